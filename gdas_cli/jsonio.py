"""The one JSON reader: every genotype, config, header, record and Hub file goes through it.

Input may be hostile or broken (a device file, a 100 MB genotype, nesting 200,000 deep, a 5,000-digit
number, bytes that are not UTF-8), so reading is bounded in size, depth and number length, and every
problem is one GdasError naming the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import GdasError

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
        raise GdasError(f"{path}: cannot read {what} ({err.strerror or err})") from None
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
