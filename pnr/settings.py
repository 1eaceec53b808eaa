"""Typed settings: one declaration per setting, with its help text, reused by the library and the CLI.

A setting is a dataclass field declared with `setting(default, help)`, which stores the help (and, where
the option is not `--field-name`, its `flag`, `choices`, `metavar`) as field metadata. From that metadata
`add_options` generates a command's argparse options (defaults are never restated there: an option not given
is None and the dataclass default applies), `overrides` reads them back into keyword arguments, and
`ConfigError` names a bad setting by its option (`flag_of`), so an error reads the same from Python and from
the command line. See docs/settings.md for which dataclass holds which settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import MISSING, field, fields

from pnr.errors import PnrError


def setting(default=MISSING, help: str = "", *, flag: str | None = None, choices=None, metavar=None,
            cli: bool = True, default_factory=MISSING):
    """A dataclass field with its help text (and optional CLI spelling) as metadata."""
    meta = {"help": help}
    if flag is not None:
        meta["flag"] = flag
    if choices is not None:
        meta["choices"] = tuple(choices)
    if metavar is not None:
        meta["metavar"] = metavar
    if not cli:
        meta["cli"] = False
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _field(cls, name: str) -> dataclasses.Field:
    for f in fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def flag_of(cls, name: str) -> str:
    """The command-line option of a setting: its `flag` metadata, else `--` + the name with dashes (res_high ->
    --res-high). The one field -> flag mapping (option generation and error messages both use it)."""
    try:
        return _field(cls, name).metadata.get("flag") or "--" + name.replace("_", "-")
    except KeyError:
        return "--" + name.replace("_", "-")


def help_of(cls) -> dict[str, str]:
    """{setting: its help text}."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}


class ConfigError(PnrError, ValueError):
    """An out-of-range setting. `.cls` and `.field` name it; the message names it by its option (`flag_of`), so
    the CLI prints it as it is (a PnrError: one line, exit 2)."""

    def __init__(self, cls, name: str, problem: str):
        self.cls, self.field, self.problem = cls, name, problem
        super().__init__(f"{flag_of(cls, name)} {problem}")


def bad(cls, name: str, why: str, value) -> typing.NoReturn:
    """Raise ConfigError '<flag> <why>, got <value>'."""
    raise ConfigError(cls, name, f"{why}, got {value}")


def _base_type(cls, f: dataclasses.Field):
    hint = typing.get_type_hints(cls)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        hint = args[0]
    return hint


def add_options(parser, cls, defaults=None, *, exclude=(), only=None, extra_help=None) -> list[str]:
    """Add one option per setting of dataclass `cls` to `parser` (or an argument group). Every option defaults to
    None (= not given); the help shows the default of `defaults` (an instance; default: `cls()`'s field defaults)
    and `extra_help(name)` if given. Returns the setting names added."""
    added = []
    for f in fields(cls):
        if f.name in exclude or (only is not None and f.name not in only) or not f.metadata.get("cli", True):
            continue
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not MISSING else f.default_factory())
        text = f.metadata.get("help", "")
        shown = f" (default {default}" + (extra_help(f.name) if extra_help else "") + ")"
        text = (text + shown).strip().replace("%", "%%")  # argparse formats help with %
        kw = {"default": None, "help": text, "dest": f.name}
        if "metavar" in f.metadata:
            kw["metavar"] = f.metadata["metavar"]
        typ = _base_type(cls, f)
        if typing.get_origin(typ) is tuple or isinstance(default, tuple):
            elem = (typing.get_args(typ) or (float,))[0]
            kw.update(type=elem, nargs=len(typing.get_args(typ)) or 2)
            kw.setdefault("metavar", ("LO", "HI") if kw["nargs"] == 2 else None)
        elif typ is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = typ
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag_of(cls, f.name), **kw)
        added.append(f.name)
    return added


def overrides(args, cls, *, exclude=(), only=None) -> dict:
    """{setting: value} of the options of `cls` given on the command line (lists back to tuples)."""
    out = {}
    for f in fields(cls):
        if f.name in exclude or (only is not None and f.name not in only) or not f.metadata.get("cli", True):
            continue
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


def config_from(args, cls, factory=None, *factory_args, exclude=(), **settings):
    """`factory(*factory_args, **settings, **the options of cls given on the command line)` (factory: cls)."""
    return (factory or cls)(*factory_args, **{**settings, **overrides(args, cls, exclude=exclude)})


# ------------------------------------------------------------------ the --device option

DEVICE_HELP = "cpu, cuda (cuda:N), or auto (cuda when available)"


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; a CUDA device on a machine without CUDA is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PnrError(f"--device {name}: CUDA is not available on this machine")
    return name
