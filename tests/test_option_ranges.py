"""Every option of every command is range-checked before any work starts (README "Reliability").

The tests walk the command tree, so a new option is covered without a new test: a numeric option must
declare a range from gdas_cli/limits.py, a choice refuses anything else, and any other option that
takes a value is listed below with the reason it has no range. Each bad value must give exit code 2,
one line on stderr naming the option, no traceback, and nothing written in the working directory
(where a run folder would go). Every refusal happens while the command line is parsed: no data is
read and no training starts, so the whole walk takes seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import typer
import typer.testing
from cli_helpers import assert_one_line_error, gdas, leaf_commands

from gdas_cli.cli import app
from gdas_cli.limits import FLOAT32_MAX, MAX_SEED, Range


ROOT = typer.main.get_command(app)
LEAVES = list(leaf_commands(ROOT))


@pytest.fixture(autouse=True)
def _built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner builds the click command tree from the app on every call (most of a call's time): reuse one."""
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: ROOT)


def _range(param) -> Range | None:
    """The limits.Range an option checks its value with (its Typer callback is that Range's `check`)."""
    check = getattr(param.callback, "__wrapped__", None)  # Typer wraps the callback it is given
    owner = getattr(check, "__self__", None)
    return owner if isinstance(owner, Range) and check == owner.check else None


def _kind(param) -> type | None:
    """int or float for a numeric option (`int | None` too), else None."""
    annotation = param.type_descriptor.annotation
    return annotation if annotation in (int, float) else None


def _arguments(command) -> list[str]:
    """A placeholder for each positional argument: the bad option is refused before any of them is read."""
    return [f"placeholder-{p.name}" for p in command.params if p.param_type_name == "argument"]


def _name(param) -> str:
    return param.opts[0]


# Options that take a value but have no range, and why. Each is checked where it is used, before anything
# is written, by the tests named.
EXEMPT = {
    "--run-dir": "the run folder to create; refused if it holds something else (test_adversarial.py, test_resume.py)",
    "--resume": "a run folder whose saved files are validated on load (test_resume.py, test_adversarial.py)",
    "--data-dir": "where the data is read from; a missing or bad one is named when the data set is described",
    "--output": "a path to write; guarded against replacing a run or an input (test_adversarial.py)",
    "--nas-bench": "the benchmark's path, checked before it is opened (test_nas_bench_201_cli.py)",
    "--genotype": "a genotype reference, resolved and validated by refs.load_genotype (test_cli.py, test_zoo.py)",
    "--init": "a weights reference, loaded strictly (test_finetune.py)",
    "--from-hub": "a Hub reference (test_hub.py)",
    "--push-to-hub": "a Hub repo id, checked by the Hub client (test_hub.py)",
    "--tag": "a Hub tag (test_hub.py)",
    "--license": "free text: the Hub license id written into the model card as given",
    "--name": "the derived genotype's name, validated with the genotype (test_derive.py)",
    "--version": "the derived genotype's semantic version, validated with the genotype (test_derive.py)",
    "--dataset": "eval: checked against the run's data set once the run is read; export: free text for the card",
}
# Arguments are references (a run folder, a genotype, an image folder), each validated by its command.
EXEMPT_ARGUMENTS = {"source", "path", "ref", "run_dir", "runs", "folder"}
# Text options with a closed set of values: a bad one is refused by name before any work, like a choice.
CLOSED_TEXT = {
    ("search", "cnn"): ["--dataset", "--recipe"],
    ("search", "rnn"): ["--dataset", "--sampling"],
    ("genotypes", "list"): ["--space"],
}


def _outside(bounds: Range, kind: type) -> list[str]:
    """Values just outside `bounds`, as typed; for floats also nan and inf."""
    if kind is int:
        return [str(int(bounds.low) - 1), str(int(bounds.high) + 1)]
    below = bounds.low if bounds.low_open else bounds.low - 1.0
    above = bounds.high if bounds.high_open else (1e39 if bounds.high == FLOAT32_MAX else bounds.high + 1.0)
    assert below not in bounds and above not in bounds and math.isfinite(above)
    return [repr(below), repr(above), "nan", "inf"]


def _numeric_cases():
    for path, command in LEAVES:
        for param in command.params:
            kind, bounds = _kind(param), _range(param)
            if kind is None or bounds is None:
                continue
            for value in _outside(bounds, kind):
                yield pytest.param(path, command, _name(param), value, id=f"{' '.join(path)} {_name(param)} {value}")


def _choice_cases():
    for path, command in LEAVES:
        for param in command.params:
            if param.param_type_name == "option" and param.type_descriptor.is_choice:
                yield pytest.param(path, command, _name(param), id=f"{' '.join(path)} {_name(param)}")
        for option in CLOSED_TEXT.get(path, []):
            yield pytest.param(path, command, option, id=f"{' '.join(path)} {option}")


def _refused_before_any_work(result, option: str, where: Path) -> None:
    assert_one_line_error(result, option)
    assert not any(where.iterdir()), sorted(p.name for p in where.iterdir())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: default run folders (runs/...) would be created here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_numeric_option_has_a_range():
    missing = [
        f"gdas {' '.join(path)} {_name(param)}"
        for path, command in LEAVES
        for param in command.params
        if _kind(param) is not None and _range(param) is None
    ]
    assert not missing, f"numeric options without a range (give them one from gdas_cli/limits.py): {missing}"


def test_every_other_option_is_a_flag_a_choice_or_exempt_for_a_reason():
    unaccounted = []
    for path, command in LEAVES:
        for param in command.params:
            if param.param_type_name == "argument":
                if param.name not in EXEMPT_ARGUMENTS:
                    unaccounted.append(f"gdas {' '.join(path)} {param.name.upper()}")
                continue
            flag = getattr(param, "is_flag", False)
            covered = flag or param.type_descriptor.is_choice or _kind(param) is not None
            if not covered and _name(param) not in EXEMPT and _name(param) not in CLOSED_TEXT.get(path, []):
                unaccounted.append(f"gdas {' '.join(path)} {_name(param)}")
    assert not unaccounted, f"options with neither a range, choices nor a reason to have none: {unaccounted}"


def test_every_default_is_in_range():
    """A default outside its range would make the command refuse itself."""
    for path, command in LEAVES:
        for param in command.params:
            bounds = _range(param)
            if bounds is not None and param.default is not None:
                assert param.default in bounds, f"gdas {' '.join(path)} {_name(param)}: default {param.default}"


@pytest.mark.parametrize("path, command, option, value", list(_numeric_cases()))
def test_a_number_out_of_range_is_refused_before_any_work(path, command, option, value, workdir):
    line = assert_one_line_error(gdas(*path, f"{option}={value}", *_arguments(command)), option)
    assert "must be" in line and f"got {value}" in line, line
    assert not any(workdir.iterdir())


@pytest.mark.parametrize("path, command, option", list(_choice_cases()))
def test_a_value_not_among_the_choices_is_refused_before_any_work(path, command, option, workdir):
    result = gdas(*path, option, "bogus", *_arguments(command))
    _refused_before_any_work(result, option, workdir)
    assert "bogus" in result.stderr


def test_seeds_past_the_largest_seed_are_refused(workdir):
    result = gdas("search", "cnn", "--dataset", "digits", "--seed", MAX_SEED, "--seeds", "2")
    _refused_before_any_work(result, "--seeds", workdir)
    assert gdas("search", "cnn", "--seed", MAX_SEED + 1).exit_code == 2


def test_float32_cap_is_torch_s() -> None:
    """limits.py is torch-free, so it spells float32's largest value out; it must be torch's."""
    import torch

    assert float(torch.finfo(torch.float32).max) == FLOAT32_MAX
