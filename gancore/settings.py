"""A setting is declared once, as one `Setting`: its flag, help, check, which trainers take it
and whether a resumed run must match it. gancore.config and gancore.framework_settings hold the
declarations; the parsers, the checks (Config's and GAN's), the refusals, config.json, the resume
check, the GAN a Config makes and the reading of recipe files are derived from them.

Pure Python: torch_baseline imports it without pulling in JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

JAX, TORCH = "jax", "torch"  # the trainers, as config.json's "framework" names them
BOTH = (JAX, TORCH)
OWNER = {JAX: "jaxgan", TORCH: "torch_baseline"}
SCRIPT = {JAX: "scripts/train_jax.py", TORCH: "scripts/train_torch.py"}
RESEARCH = "research options (jaxgan only)"
_AS_DEFAULT = object()


class UserError(ValueError):
    """Bad input from the user (a flag, a file, a workdir): the message is one sentence
    saying what is wrong and what to do; scripts print it and exit with code 2."""


class ConfigError(UserError):
    """A configuration value is out of range; the message says what is allowed."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting. `name` is its Config field, or for a framework setting its key in config.json."""

    name: str
    default: Any
    flag: str | None  # None: set through the Python API only
    help: str = ""
    type: Callable[[str], Any] | None = None  # what argparse converts the text with; None: a switch
    choices: tuple | None = None
    must: tuple[str, Callable[[Any], bool]] | None = None  # ("be at least 1", test): "--x must be at least 1, got 0."
    trainers: tuple[str, ...] = BOTH
    article: tuple | None = None  # the values torch_baseline (the article's GAN) runs, where not every value
    run: bool = False  # a resumed run must have the same value
    older: Any = _AS_DEFAULT  # what runs saved before the setting existed had (default: `default`)
    group: str | None = None  # the --help section; None: the main one
    env: str | None = None  # the environment variable that gives the value when the flag is not passed
    gan: str | None = None  # the jaxgan.gan.GAN field it fills (jaxgan.build.make_gan), which it also checks
    in_effect: str | None = None  # the Config property holding the value in effect (config.json records it, the GAN takes it)

    @property
    def label(self) -> str:
        """How messages name it: its flag, else its field."""
        return self.flag or self.name

    @property
    def resume_default(self) -> Any:
        return self.default if self.older is _AS_DEFAULT else self.older

    def problem(self, value: Any, label: str | None = None) -> str | None:
        """One sentence saying why `value` is not allowed, or None (None, i.e. unset, always is);
        `label` names the setting in it in place of its flag."""
        label = label or self.label
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{label} must be one of {', '.join(map(str, self.choices))}, got {value!r}."
        if self.must is not None and not _holds(self.must[1], value):
            return f"{label} must {self.must[0]}, got {value!r}."
        return None

    def not_for(self, trainer: str, value: Any) -> str | None:
        """How a refusal names this setting when `trainer` cannot run `value` ("--arch", "--g-loss hinge"), else None."""
        if trainer not in self.trainers:
            return None if value in (self.article or (self.default,)) else self.label
        if trainer == TORCH and self.article is not None and value not in self.article:
            return f"{self.flag} {value}"
        return None

    def add_to(self, parser: argparse.ArgumentParser, hidden: bool = False, default: Any = None) -> None:
        """Its flag; `hidden`: parsed, left out of --help and of the result unless given (to be refused)."""
        help = argparse.SUPPRESS if hidden else self.help + (f" (${self.env})" if self.env else "")
        default = argparse.SUPPRESS if hidden else self.default if default is None else default
        if self.type is None:
            parser.add_argument(self.flag, dest=self.name, action="store_true", default=default, help=help)
        else:
            parser.add_argument(self.flag, dest=self.name, type=self.type, choices=self.choices, default=default, help=help)


def _holds(test: Callable[[Any], bool], value: Any) -> bool:
    """Whether `value` passes `test`; a value of another type (a word for a number) does not."""
    try:
        return bool(test(value))
    except TypeError:
        return False


_TYPES = {"int": int, "float": float, "str": str}


def declare(default: Any, flag: str | None, help: str = "", **kwargs) -> Any:
    """A dataclass field with its Setting (see `Setting`); `of_fields` completes the name and type."""
    return dataclasses.field(default=default, metadata={"setting": dict(default=default, flag=flag, help=help, **kwargs)})


def of_fields(cls) -> tuple[Setting, ...]:
    """The Settings `declare` attached to a dataclass's fields; argparse's type comes from the annotation."""
    return tuple(Setting(name=f.name, type=_TYPES.get(f.type.removesuffix(" | None")), **f.metadata["setting"]) for f in dataclasses.fields(cls))


_KINDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def read_recipe(recipe: str, folder: Path, settings: tuple[Setting, ...]) -> dict[str, Any]:
    """The values of `recipe`, a name (folder/NAME.toml) or a .toml file; its keys are the settings'
    names, as in config.json, each value checked by its declaration. ConfigError in one sentence
    naming the file and the key."""
    if problem := next(s for s in settings if s.name == "recipe").problem(recipe):
        raise ConfigError(problem)
    path = Path(recipe) if recipe.endswith(".toml") else folder / f"{recipe}.toml"
    try:
        table = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"recipe {path} cannot be read ({e.strerror}); give an existing .toml file.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"recipe {path} is not valid TOML ({e}); fix it.") from None
    declared = {s.name: s for s in settings if s.flag}
    values = {}
    for key, value in table.items():
        if key not in declared:
            raise ConfigError(f"{key} in {path} is not a setting a recipe can hold; use config.json's names, e.g. batch_size for --batch-size.")
        kind = declared[key].type or bool
        # TOML has its own types: a whole number may stand for a float, a bool for nothing else.
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float) if kind is float else kind):
            raise ConfigError(f"{key} in {path} must be {_KINDS[kind]}, got {value!r}.")
        if problem := declared[key].problem(kind(value), label=f"{key} in {path}"):
            raise ConfigError(problem)
        values[key] = kind(value)
    return values


class Parser(argparse.ArgumentParser):
    """Reads --recipe first: its values fill the namespace before the flags are parsed, so a flag
    given on the command line wins over the recipe, and the recipe over the declared default."""

    def __init__(self, *args, read_recipe: Callable[[str], dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.read_recipe = read_recipe

    def parse_known_args(self, args=None, namespace=None):
        parsed = super().parse_known_args(args, namespace)
        if getattr(parsed[0], "recipe", None) is None:
            return parsed
        try:
            values = self.read_recipe(parsed[0].recipe)
        except ConfigError as e:  # already a sentence saying what to do
            self.exit(2, f"error: {e}\n")
        return super().parse_known_args(args, argparse.Namespace(**values))

    def error(self, message: str):
        """A flag argparse refuses (a wrong type or choice) is one line, as every other refusal, not its usage block."""
        self.exit(2, f"error: {message} (see --help).\n")


def build_parser(settings: tuple[Setting, ...], trainer: str, description: str, defaults: dict, read_recipe: Callable[[str], dict]) -> argparse.ArgumentParser:
    """`trainer`'s flags, in declaration order and sections; the other trainers' flags are parsed but hidden,
    so that they can be refused in one sentence. `defaults` replaces declared defaults (the workdir);
    `read_recipe(--recipe's value)` gives the values a recipe sets."""
    parser = Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter, read_recipe=read_recipe)
    sections = {None: parser}
    for s in settings:
        if s.flag is None:
            continue
        if trainer in s.trainers:
            if s.group not in sections:
                sections[s.group] = parser.add_argument_group(s.group)
            s.add_to(sections[s.group], default=defaults.get(s.name))
        else:
            s.add_to(parser, hidden=True)
    return parser
