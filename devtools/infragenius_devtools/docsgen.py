"""Generate README.md's configuration table from the settings model.

    python -m infragenius_devtools.docsgen            # rewrite the table in README.md
    python -m infragenius_devtools.docsgen --check    # exit 1 when README.md is out of date

The table sits between ``START`` and ``END`` markers; everything else in the README is left alone.
It is derived from :class:`infragenius.settings.Settings` field by field, so a new setting only
needs a ``Field(description=...)`` to be documented.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import AliasChoices, AliasPath, BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = ("Environment variable", "Type", "Default", "Description")


class ReadmeError(Exception):
    """The README cannot be updated (no markers, or markers in the wrong order)."""


def env_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    """Every environment variable that sets ``field``, in the order pydantic-settings tries them."""
    alias = field.validation_alias
    # pydantic-settings applies no prefix to an explicit alias: the alias is the variable's full name.
    if isinstance(alias, str):
        return [alias.upper()]
    if isinstance(alias, AliasChoices):
        # An AliasPath reads inside a JSON value, which has no environment variable of its own.
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0]).upper()]
    if field.alias:
        return [field.alias.upper()]
    return [f"{prefix}{name}".upper()]


def type_name(annotation: Any) -> str:
    """A short, reader-facing name for a field's type (None is shown as "unset" in the default column)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return " or ".join(type_name(a) for a in members)
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in args)
    if annotation in (SecretStr, SecretBytes):
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(json.dumps(m.value) for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"JSON object ({annotation.__name__})"
    if origin in (list, set, frozenset, tuple, typing.Sequence):
        return f"JSON list of {type_name(args[0]) if args else 'any'}"
    if origin is dict or annotation is dict:
        return f"JSON object of {type_name(args[1])}" if len(args) == 2 else "JSON object"
    if annotation is Any:
        return "any"
    # Plain classes (str, int, float, bool, ...) are named as they are.
    return getattr(annotation, "__name__", str(annotation))


def bounds(field: FieldInfo) -> str:
    """Numeric and length limits the model enforces, so readers know the accepted range."""
    parts: list[str] = []
    for item in field.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if isinstance(item, getattr(annotated_types, attr.capitalize())) and value is not None:
                parts.append(f"{symbol} {_number(value)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"length ≥ {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"length ≤ {item.max_length}")
    return ", ".join(parts)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def default_text(field: FieldInfo) -> str:
    """The default as one would write it in the environment; secrets never show a value."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, (SecretStr, SecretBytes)) or type_name(field.annotation) == "secret":
        return "secret"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), separators=(",", ":"))
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        # Containers are read from JSON in the environment.
        return json.dumps(list(value) if isinstance(value, (set, frozenset, tuple)) else value, separators=(",", ":"))
    return _number(value)


def _cell(text: str) -> str:
    # A pipe would end the cell and a newline the row.
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """One row per field, in declaration order (the order the model groups related settings in)."""
    prefix = str(model.model_config.get("env_prefix", ""))
    out = []
    for name, field in model.model_fields.items():
        names = ", ".join(_code(n) for n in env_names(name, field, prefix))
        kind = type_name(field.annotation)
        limit = bounds(field)
        out.append(
            (
                names,
                _cell(f"{kind} ({limit})" if limit else kind),
                _code(_cell(default_text(field))),
                _cell(field.description or ""),
            )
        )
    return out


def render_table(model: type[BaseModel]) -> str:
    """The Markdown table, ending in a newline."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(model)]
    return "\n".join(lines) + "\n"


def _split(readme: str) -> tuple[str, str, str]:
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < 0 or end < start:
        raise ReadmeError(f"README needs the markers {START} and {END}, in that order")
    return readme[: start + len(START)], readme[start + len(START) : end], readme[end:]


def current_table(readme: str) -> str:
    """What the README holds between the markers, without the surrounding blank lines."""
    return _split(readme)[1].strip("\n") + "\n"


def update(readme: str, table: str) -> str:
    """The README text with ``table`` between the markers."""
    head, _, tail = _split(readme)
    return f"{head}\n{table}{tail}"


def _settings_model() -> type[BaseModel]:
    # Imported here so that the pure functions above can be tested on any model without it.
    from infragenius.settings import Settings

    return Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infragenius_devtools.docsgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's table is out of date")
    parser.add_argument("--readme", type=Path, default=README, help="default: %(default)s")
    args = parser.parse_args(argv)
    table = render_table(_settings_model())
    try:
        text = args.readme.read_text()
        if args.check:
            if current_table(text) != table:
                print(
                    f"{args.readme}: the configuration table is out of date with infragenius.settings.Settings; "
                    "run `make docs` and commit the result",
                    file=sys.stderr,
                )
                return 1
            return 0
        new = update(text, table)
    except (OSError, ReadmeError) as err:
        print(f"docsgen: {err}", file=sys.stderr)
        return 2
    if new != text:
        args.readme.write_text(new)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
