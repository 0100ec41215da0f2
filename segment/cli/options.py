"""Command-line options generated from a settings model.

Each setting is declared once, as a field of ``segment.settings.SegmentationSettings`` (type,
default, bounds, description). ``add_options`` turns the fields into argparse options
(``--k-min`` for ``k_min``; a nested model's fields under its ``Option.prefix``, e.g.
``--gate-silhouette-floor`` for ``gates.silhouette_floor``), ``given_settings`` turns the
parsed options back into the nested dict the model validates, and ``options_markdown`` writes
the README's option table from the same fields. An ``Option`` in a field's ``Annotated``
metadata changes how it appears on the command line; the model stays the only declaration.

argparse, not typer or cyclopts (both installed with Prefect): ``segment`` starts Prefect's
server before it imports Prefect (``flows.server``), so its parser must import nothing heavy;
and it keeps the existing option spellings and exit codes (2 on a usage error) unchanged.
"""

from __future__ import annotations

import argparse
import os
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from segment.settings import Option

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OFF = ("off", "none")  # an optional setting with a default is switched off with these words
METAVARS = {int: "N", float: "X", str: "TEXT", Path: "PATH", date: "YYYY-MM-DD"}


@dataclass(frozen=True)
class Spec:
    """One generated option: where its value goes in the settings and how argparse reads it."""

    path: tuple[str, ...]  # field names from the top model, e.g. ("gates", "silhouette_floor")
    flag: str
    kwargs: dict[str, Any]
    default: str  # as shown in --help and the README ("" when there is nothing to show)
    help: str
    group: str | None  # the nested model's field name, for a help section

    @property
    def dest(self) -> str:
        return "__".join(self.path)


def option_specs(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> list[Spec]:
    """Every command-line option of ``model``'s fields (nested models flattened), in field
    order; ``skip``: top-level fields that are not options of this command."""
    return list(_specs(model, (), None, None, skip))


def _specs(
    model: type[BaseModel],
    path: tuple[str, ...],
    prefix: str | None,
    group: str | None,
    skip: tuple[str, ...],
) -> Iterator[Spec]:
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        option = next((m for m in field.metadata if isinstance(m, Option)), Option())
        kind = _unwrap(field.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _specs(kind, (*path, name), option.prefix or name, name, ())
            continue
        flag = option.flag or "--" + "-".join(p for p in (prefix, name) if p).replace("_", "-")
        kwargs, shown = _argparse_kwargs(field, kind, option)
        yield Spec((*path, name), flag, kwargs, shown, field.description or "", group)


def _optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if _optional(annotation):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def _argparse_kwargs(field: FieldInfo, kind: Any, option: Option) -> tuple[dict[str, Any], str]:
    default = field.get_default(call_default_factory=True)
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS}  # only given options are set
    if option.metavar:
        kwargs["metavar"] = option.metavar
    origin = get_origin(kind)
    if kind is bool:
        kwargs["action"] = "store_true"
        return kwargs, "off" if default is False else "on"
    if origin is Literal:
        kwargs["choices"] = list(get_args(kind))
    elif origin is list:
        kwargs |= {"nargs": "+", "type": option.parse or str}
        kwargs.setdefault("metavar", "VALUE")
    elif origin is dict:
        kwargs |= {"action": "append", "type": option.parse or _pair}
        kwargs.setdefault("metavar", "NAME=VALUE")
    else:
        parse = option.parse or {Path: _path, date: date.fromisoformat}.get(kind, kind)
        if _optional(field.annotation) and default is not None and option.parse is None:
            parse = _or_off(parse)  # a setting on by default can be switched off
            kwargs.setdefault("metavar", "X|off")
        kwargs["type"] = parse
        kwargs.setdefault("metavar", METAVARS.get(kind, "VALUE"))
    return kwargs, _shown(default)


def _shown(default: Any) -> str:
    """A default as --help and the README show it: project paths relative, none as blank."""
    if default is None or default == {} or default == []:
        return ""
    if isinstance(default, Path):
        try:
            return str(default.relative_to(PROJECT_ROOT)) or "."
        except ValueError:
            return str(default)
    if isinstance(default, tuple):
        return "-".join(map(str, default))
    return str(default)


def _path(text: str) -> Path:
    """Absolute, with ``..`` resolved as text (``os.path.abspath``): the path runs record."""
    return Path(os.path.abspath(Path(text).expanduser()))


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _or_off(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_off(text: str) -> Any:
        if text.strip().lower() in OFF:
            return None
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a value or 'off', got {text!r}") from None

    parse_or_off.__name__ = getattr(parse, "__name__", "value")
    return parse_or_off


def add_options(
    parser: argparse.ArgumentParser, model: type[BaseModel], *, skip: tuple[str, ...] = ()
) -> None:
    """Add an option for every field of ``model`` (nested ones in their own help section)."""
    groups: dict[str | None, Any] = {None: parser}
    for spec in option_specs(model, skip=skip):
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(f"{spec.group} settings")
        text = spec.help + (f" (default: {spec.default})" if spec.default else "")
        # argparse formats help with %: keep a literal % (e.g. in a date format) as it is
        text = text.replace("%", "%%")
        groups[spec.group].add_argument(spec.flag, dest=spec.dest, help=text, **spec.kwargs)


def given_settings(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The options given on the command line as the nested dict ``model`` validates (an option
    not given is absent: the model's default applies)."""
    given: dict[str, Any] = {}
    for spec in option_specs(model):
        if not hasattr(args, spec.dest):
            continue
        value = getattr(args, spec.dest)
        if spec.kwargs.get("action") == "append":
            value = dict(value)
        *parents, name = spec.path
        node = given
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return given


def usage_error(error: ValidationError, model: type[BaseModel]) -> str:
    """A settings validation error as one line naming the options (``--k-min: ...``)."""
    specs = option_specs(model)
    parts = []
    for item in error.errors():
        loc = tuple(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # the option of the field (its path as in the error), if it has one
        flag = next((spec.flag for spec in specs if spec.path == loc[: len(spec.path)]), None)
        if flag is None:  # a check across fields (k_min > k_max): name their options instead
            for spec in specs:
                if spec.path[:-1] == loc:
                    message = re.sub(rf"\b{spec.path[-1]}\b=?", spec.flag + " ", message)
            message = re.sub(r" +", " ", message).replace(" :", ":")
        where = flag or ("" if "--" in message else ".".join(loc) or "settings")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def options_markdown(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> str:
    """The README's option table: one row per option, as ``--help`` shows it."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for spec in option_specs(model, skip=skip):
        metavar = spec.kwargs.get("metavar")
        if "choices" in spec.kwargs:
            metavar = "{" + ",".join(map(str, spec.kwargs["choices"])) + "}"
        usage = " ".join(p for p in (spec.flag, metavar) if p)
        if spec.kwargs.get("nargs") == "+":
            usage += " ..."
        usage = "`" + usage.replace("|", "\\|") + "`"  # a | inside a table cell is escaped
        default = f"`{spec.default}`" if spec.default else ""
        rows.append(f"| {usage} | {default} | {spec.help.replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":  # the README's option table: python -m segment.cli.options
    # imported by name: this file runs as __main__, a copy whose Option the settings don't use
    from segment.cli.options import options_markdown as table
    from segment.settings import SegmentationSettings

    print(table(SegmentationSettings))
