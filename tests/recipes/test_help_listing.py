"""``--help``'s group listing with one shared repository copy lists exactly what Hydra's own listing does."""

from __future__ import annotations

import pytest
from hydra._internal import config_repository
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from recipe_helpers import ROOT

import recipes.config  # noqa: F401  (registers the schema, as recipes.train does)
from recipes.help_listing import shared_listing_repository, wants_help


@pytest.fixture
def hydra(monkeypatch):
    GlobalHydra.instance().clear()
    app = Hydra.create_main_hydra2(task_name="help", config_search_path=create_config_search_path(str(ROOT / "conf")))
    copies = []
    init = config_repository.CachingConfigRepository.__init__

    def counted(self, delegate):
        copies.append(1)
        init(self, delegate)

    monkeypatch.setattr(config_repository.CachingConfigRepository, "__init__", counted)
    yield app, copies
    GlobalHydra.instance().clear()


def test_shared_listing_lists_what_hydra_lists_with_one_copy(hydra):
    app, copies = hydra
    ours = lambda group: not group.startswith("hydra")  # noqa: E731
    plain = app.format_config_groups(ours)
    plain_copies = len(copies)
    copies.clear()
    with shared_listing_repository() as active:
        shared = app.format_config_groups(ours)
    assert active
    assert shared == plain
    assert "\nshortcut: " in shared and "laurel_rw_lr" in shared and "\nrecipe: " in shared
    assert len(copies) == 1 and plain_copies > 10  # Hydra copies the repository per listed group


def test_compositions_and_other_commands_are_untouched(hydra):
    app, copies = hydra
    with shared_listing_repository():
        app.config_loader.load_configuration("train", ["shortcut=laurel_rw"], run_mode=None)
        app.config_loader.load_configuration("train", ["shortcut=rezero"], run_mode=None)
    assert len(copies) == 2  # each composition still builds its own
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    restored = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    assert restored.__name__ == "_parse_overrides_and_create_caching_repo"  # Hydra's own again after the block
    assert wants_help(["recipe=x", "--help"]) and wants_help(["-h"])
    assert not wants_help(["--hydra-help"]) and not wants_help(["help=true"])
