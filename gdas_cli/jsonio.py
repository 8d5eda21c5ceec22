"""The one JSON reader: every genotype, config, header, record and Hub file goes through it.

Input may be hostile or broken (a device file, a 100 MB genotype, nesting 200,000 deep, a 5,000-digit
number, bytes that are not UTF-8), so reading is bounded in size, depth and number length, and every
problem is one GdasError naming the file. `check_fields` then checks what a config read back from a
run holds against the types its dataclass declares, before any of it is used.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from .errors import GdasError, os_error

MAX_BYTES = 16 * 1024 * 1024  # far above any genotype, config or metrics file the package writes
MAX_DEPTH = 32  # genotypes nest 5 deep, configs 4
MAX_NUMBER_CHARS = 40  # enough for any float repr or int the package writes
# a run of characters long enough to hold a number over the limit; text without one needs no per-number check
_LONG_NUMBER = re.compile(rf"[0-9.eE+-]{{{MAX_NUMBER_CHARS + 1},}}")


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number of {len(text)} characters")
        return kind(text)

    return parse


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, giving up past `limit`."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(text: str, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with bounded numbers and depth; `source` names the file in errors."""
    if len(text) > MAX_BYTES:
        raise GdasError(f"{source}: {len(text):,} characters, more than the {MAX_BYTES:,} a gdas JSON file may hold")
    checked: dict[str, Any] = {}
    if _LONG_NUMBER.search(text):  # only then can a number be too long: check each one (slower)
        checked = {"parse_int": _number(int), "parse_float": _number(float)}
    try:
        data = json.loads(text, parse_constant=_reject_constant, **checked)
    except json.JSONDecodeError as err:
        raise GdasError(f"{source}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise GdasError(f"{source}: JSON nested too deeply (more than {max_depth} levels)") from None
    except ValueError as err:
        raise GdasError(f"{source}: not valid JSON ({err})") from None
    # every level opens a bracket: text with few of them needs no walk over what it parsed to
    if text.count("[") + text.count("{") > max_depth and _depth(data, max_depth) > max_depth:
        raise GdasError(f"{source}: JSON nested too deeply (more than {max_depth} levels)")
    return data


def read_text(path: Path, what: str = "file", max_bytes: int = MAX_BYTES) -> str:
    """UTF-8 text of a regular file of at most `max_bytes` bytes; anything else is one GdasError."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise GdasError(f"{path}: not a regular file (a {what} is a file)")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise GdasError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise GdasError(f"{path}: a folder, not a {what}") from None
    except OSError as err:
        raise os_error(err, f"{path}: cannot read {what}") from None
    if len(data) > max_bytes:
        raise GdasError(f"{path}: larger than {max_bytes:,} bytes; not a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise GdasError(f"{path}: not UTF-8 text; not a {what}") from None


def read_json(path: Path, what: str = "JSON file") -> Any:
    """A bounded JSON file (see `parse_json`)."""
    return parse_json(read_text(path, what), str(path))


def read_json_object(path: Path, what: str = "JSON file") -> dict[str, Any]:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise GdasError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_jsonl(path: Path, what: str = "JSON-lines file", *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped); a bad line is an error naming its number.

    The one reader of every JSON-lines file a run writes (metrics.jsonl, alphas.jsonl, genotypes.jsonl).
    `missing_ok`: a missing file reads as no records (a run that has not finished an epoch yet).
    """
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    lines = read_text(path, what).splitlines()
    try:  # one parse of the whole file is several times faster than one per line (gdas runs list)
        records = parse_json("[" + ",".join(line for line in lines if line.strip()) + "]", str(path), MAX_DEPTH + 1)
        if all(isinstance(record, dict) for record in records):
            return records
    except GdasError:
        pass  # find the bad line and say which
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}: line {number}")
        if not isinstance(record, dict):
            raise GdasError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def check_fields(cls: type, data: dict[str, Any], source: str, what: str = "configuration") -> None:
    """Every value of `data` whose key is a field of dataclass `cls` has the type the field declares.

    For configs read back from a run (config.json on resume, in a --seeds plan): a value of the wrong
    type is one GdasError naming the file and the key, not a failure deep inside the run. Understands
    the annotations configs use: bool, int, float (an int is accepted), str, None, `X | None`,
    list[X], tuple[X, ...], tuple[X, Y], dict[str, X], Path (a string) and Any.
    """
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key in hints and not _matches(value, hints[key]):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise GdasError(f"{source}: {what} {key!r} must be {_described(hints[key])}, not {shown}")


def _matches(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation in (str, Path):
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict:
        if not isinstance(value, dict):
            return False
        return all(isinstance(k, str) and _matches(v, args[1]) for k, v in value.items()) if args else True
    if annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    if annotation is dict:
        return isinstance(value, dict)
    return True  # a type configs do not hold: checked where it is used


def _described(annotation: Any, plural: bool = False) -> str:
    """`an integer`, `a list of numbers or null`: the annotation as a reader of config.json says it."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_described(arg, plural) for arg in args)
    names = {
        type(None): ("null", "nulls"),
        bool: ("true or false", "booleans"),
        int: ("an integer", "integers"),
        float: ("a number", "numbers"),
        str: ("a string", "strings"),
        Path: ("a string", "strings"),
    }
    if annotation in names:
        return names[annotation][plural]
    if origin in (list, tuple) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            kinds = {_described(a, True) for a in args}
            return f"a list of {len(args)} {kinds.pop()}" if len(kinds) == 1 else f"a list of {len(args)} values"
        return f"a list of {_described(args[0], True)}"
    if origin is dict or annotation is dict:
        return "objects" if plural else "an object"
    return "lists" if plural else "a list"
