"""Driving the real `gdas` Typer app in-process, and the one check every bad-input test makes."""

from typer.testing import CliRunner

from gdas_cli.cli import app

runner = CliRunner()


def gdas(*args):
    """Run `gdas ARGS...` in this process; the result has exit_code, stdout and stderr."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str, code: int = 2) -> str:
    """Exit code `code` (2: bad input, 1: the machine or network failed), no traceback, exactly one stderr
    line holding every needle; returns that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def leaf_commands(command, path=()):
    """(path, click command) of every runnable command under `command` (typer.main.get_command(app))."""
    children = getattr(command, "commands", None)
    if not children:
        yield path, command
        return
    for name, child in children.items():
        yield from leaf_commands(child, (*path, name))
