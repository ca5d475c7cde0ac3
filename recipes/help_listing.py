"""``--help`` lists the config groups without Hydra's per-call repository copies.

Hydra 1.3's ``--help`` lists every config group through ``ConfigLoaderImpl.get_group_options``, which builds a
new ``CachingConfigRepository`` for each call, and that constructor deep-copies the whole repository (our
structured-config schema included). The listing makes two calls per group, for Hydra's own ``hydra/`` groups
too (which our help template does not show): 94 deep copies, about 1 s of a 2.8 s ``--help`` on the 2-core
Xeon. The listing passes no overrides and no config name, so every call would build the same repository: here
it is built once per help and reused. Nothing changes outside ``--help``; if Hydra's internals are not the
ones this was written against, Hydra's own listing runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

HELP_FLAGS = ("--help", "-h")


def wants_help(argv: Sequence[str]) -> bool:
    """True for the application's ``--help`` (Hydra's ``--hydra-help`` is left alone)."""
    return any(a in HELP_FLAGS for a in argv)


@contextlib.contextmanager
def shared_listing_repository() -> Iterator[bool]:
    """Within the block, the group listing's calls (no config name, no overrides) share one repository copy.

    Yields whether the shortcut is active (False: this Hydra lacks the internals it relies on).
    """
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
    except ImportError:
        yield False
        return
    original = getattr(ConfigLoaderImpl, "_parse_overrides_and_create_caching_repo", None)
    if original is None:
        yield False
        return
    memo: dict[int, tuple[list[Any], Any]] = {}

    def parse_once(self: Any, config_name: Any, overrides: list[str]) -> Any:
        if config_name is not None or overrides:  # a composition: as Hydra does it
            return original(self, config_name, overrides)
        if id(self) not in memo:  # the listing's calls: no config, no overrides, the same repository
            memo[id(self)] = original(self, config_name, overrides)
        parsed, repo = memo[id(self)]
        return list(parsed), repo

    ConfigLoaderImpl._parse_overrides_and_create_caching_repo = parse_once  # type: ignore[method-assign]
    try:
        yield True
    finally:
        ConfigLoaderImpl._parse_overrides_and_create_caching_repo = original  # type: ignore[method-assign]
