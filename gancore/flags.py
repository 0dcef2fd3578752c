"""Both trainers' command lines, derived from the settings' declarations (`gancore.config`,
`gancore.framework_settings`): `build_parser` and `from_flags`. Pure Python.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gancore.config import CONFIG_SETTINGS, SETTINGS, Config, read_recipe
from gancore.framework_settings import FRAMEWORK_SETTINGS
from gancore.settings import OWNER, SCRIPT, ConfigError, Setting
from gancore.settings import build_parser as _build_parser


def build_parser(trainer: str, description: str, default_workdir: str) -> argparse.ArgumentParser:
    """`trainer`'s flags ("jax" or "torch"); the other's are parsed too, to be refused by `from_flags`."""
    return _build_parser(SETTINGS, trainer, description, {"workdir": default_workdir}, read_recipe)


def from_flags(trainer: str, args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    """The validated Config and `trainer`'s framework settings by name; ConfigError on a bad value
    or a framework flag of the other trainer (the research options are refused where they cannot run:
    Config.non_article_options)."""
    given = vars(args)
    foreign = [s for s in FRAMEWORK_SETTINGS if s.name in given and s.not_for(trainer, given[s.name])]
    if foreign:
        other = foreign[0].trainers[0]
        raise ConfigError(f"{', '.join(s.flag for s in foreign)} is a {OWNER[other]} option: run it with {SCRIPT[other]}.")
    config = Config(**{s.name: given[s.name] for s in CONFIG_SETTINGS if s.name in given}).validate()
    mine = [s for s in FRAMEWORK_SETTINGS if trainer in s.trainers]
    return config, {s.name: _from_env(s) if given[s.name] is None and s.env else given[s.name] for s in mine}


def _from_env(setting: Setting) -> Any:
    """The variable's value as the flag's type (the env settings are strings and whole numbers)."""
    value = os.environ.get(setting.env)
    if not value:
        return None
    try:
        return setting.type(value)
    except ValueError:
        raise ConfigError(f"${setting.env} must be a whole number, got {value!r}; fix or unset it.") from None
