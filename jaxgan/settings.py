"""A setting is declared once, as one `Setting`: its flag, help, check, which trainers take it
and whether a resumed run must match it. jaxgan.config holds the declarations; the parsers,
the checks, the refusals and the resume check are derived from them.

Pure Python: torch_baseline imports it without pulling in JAX.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

JAX, TORCH = "jax", "torch"  # the trainers, as config.json's "framework" names them
BOTH = (JAX, TORCH)
OWNER = {JAX: "jaxgan", TORCH: "torch_baseline"}
SCRIPT = {JAX: "scripts/train_jax.py", TORCH: "scripts/train_torch.py"}
RESEARCH = "research options (jaxgan only)"
_AS_DEFAULT = object()


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

    @property
    def label(self) -> str:
        """How messages name it: its flag, else its field."""
        return self.flag or self.name

    @property
    def resume_default(self) -> Any:
        return self.default if self.older is _AS_DEFAULT else self.older

    def problem(self, value: Any) -> str | None:
        """One sentence saying why `value` is not allowed, or None (None, i.e. unset, always is)."""
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{self.label} must be one of {', '.join(map(str, self.choices))}, got {value!r}."
        if self.must is not None and not self.must[1](value):
            return f"{self.label} must {self.must[0]}, got {value!r}."
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


_TYPES = {"int": int, "float": float, "str": str}


def declare(default: Any, flag: str | None, help: str = "", **kwargs) -> Any:
    """A dataclass field with its Setting (see `Setting`); `of_fields` completes the name and type."""
    return dataclasses.field(default=default, metadata={"setting": dict(default=default, flag=flag, help=help, **kwargs)})


def of_fields(cls) -> tuple[Setting, ...]:
    """The Settings `declare` attached to a dataclass's fields; argparse's type comes from the annotation."""
    return tuple(
        Setting(name=f.name, type=_TYPES.get(f.type.removesuffix(" | None")), **f.metadata["setting"])
        for f in dataclasses.fields(cls)
    )


def build_parser(settings: tuple[Setting, ...], trainer: str, description: str, defaults: dict) -> argparse.ArgumentParser:
    """`trainer`'s flags, in declaration order and sections; the other trainers' flags are parsed but hidden,
    so that they can be refused in one sentence. `defaults` replaces declared defaults (the workdir)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
