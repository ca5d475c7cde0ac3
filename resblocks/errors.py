"""The one error type the library raises for bad names, options and combinations."""


class ConfigError(ValueError):
    """A bad name, option or combination, described in one line.

    The message names the key, the bad value and the valid choices, e.g.
    ``shortcut: unknown name 'lauerl_rw'; valid: decayed, highway, identity, ...``.
    It subclasses ``ValueError`` so plain ``except ValueError`` code keeps working.
    """


def check(condition: bool, key: str, message: str) -> None:
    """Raise ``ConfigError(f"{key}: {message}")`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: {message}")
