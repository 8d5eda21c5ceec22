"""The `gdas genotypes` commands end to end through the real Typer app, and one-line errors for bad input."""

import json

import pytest
from typer.testing import CliRunner

from gdas_cli.cli import app
from gdas_cli.genotype import load_local_genotype as load_genotype
from cli_helpers import assert_one_line_error

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))




def test_help_lists_examples():
    result = run("--help")
    assert result.exit_code == 0
    assert "genotypes" in result.output
    assert "gdas genotypes plot" in run("genotypes", "--help").output


def test_list_json_and_table():
    result = run("genotypes", "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {"name": "gdas_frc", "version": "1.0.0", "kind": "cnn"}.items() <= next(
        r for r in rows if r["name"] == "gdas_frc"
    ).items()
    table = run("genotypes", "list", "--kind", "rnn")
    assert "gdas_rnn" in table.stdout and "gdas_frc" not in table.stdout


def test_show_is_readable():
    result = run("genotypes", "show", "gdas_frc")
    assert result.exit_code == 0
    assert "node 3 = skip_connect(c_{k-2}) + sep_conv_3x3(node 2)" in result.stdout
    assert "fixed reduction cell" in result.stdout
    assert "node 1 = relu(h_0)" in run("genotypes", "show", "gdas_rnn").stdout


@pytest.mark.parametrize(
    "args, params, madds",
    [
        (["gdas", "--net", "cifar10"], 3_369_058, None),
        (["gdas_frc", "--net", "imagenet"], 4_430_386, 496_733_952),
    ],
)
def test_info_json(args, params, madds):
    result = run("genotypes", "info", *args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data["params"], int) and isinstance(data["mult_adds"], int)
    assert data["params"] == pytest.approx(params, rel=1e-3)
    if madds:
        assert data["mult_adds"] == pytest.approx(madds, rel=1e-3)


def test_info_with_widths():
    result = run("genotypes", "info", "gdas", "--net", "cifar100", "-C", "16", "--layers", "8", "--json")
    data = json.loads(result.stdout)
    assert (data["C"], data["layers"], data["net"]) == (16, 8, "cifar100")
    assert data["params"] < 1_000_000


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_image(tmp_path, suffix):
    out = tmp_path / f"cell{suffix}"
    result = run("genotypes", "plot", "gdas", "-o", str(out))
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:8]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()[:400]
    assert list(tmp_path.iterdir()) == [out], "no temp files left behind"


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _gdas(**changes):
    return {**load_genotype("gdas").to_dict(), **changes}


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("malformed.json", "{\"schema\": ", "not valid JSON"),
        ("unknown_op.json", _gdas(normal={"nodes": [[["conv_9x9", 0], ["skip_connect", 1]]], "concat": [2]}),
         "unknown op 'conv_9x9'"),
        ("bad_index.json", _gdas(normal={"nodes": [[["skip_connect", 7], ["skip_connect", 1]]], "concat": [2]}),
         "input index 7 out of range"),
        ("no_nodes.json", _gdas(normal={"nodes": [], "concat": [2]}), "wrong number of nodes"),
        ("schema.json", _gdas(schema_version=99), "unsupported version 99"),
    ],
)
def test_bad_genotype_files(tmp_path, name, content, needle):
    path = _write(tmp_path, name, content)
    for command in (["genotypes", "show", path], ["genotypes", "info", path]):
        assert_one_line_error(run(*command), name, needle)


def test_missing_file_and_unknown_name(tmp_path):
    assert_one_line_error(run("genotypes", "show", str(tmp_path / "nope.json")), "nope.json", "no such genotype file")
    assert_one_line_error(run("genotypes", "show", "nope"), "nope", "unknown genotype name")
    assert_one_line_error(run("genotypes", "show", "gdas@2.0.0"), "gdas@2.0.0", "no version 2.0.0")


def test_bad_options(tmp_path):
    assert_one_line_error(run("genotypes", "info", "gdas", "--layers", "abc"), "--layers")
    assert_one_line_error(run("genotypes", "info", "gdas", "--net", "mnist"), "--net", "mnist")
    assert_one_line_error(run("genotypes", "info", "gdas_rnn"), "gdas_rnn", "rnn genotype")
    assert_one_line_error(run("genotypes", "plot", "gdas", "-o", str(tmp_path / "cell.gif")), "--output", ".png")
    assert not (tmp_path / "cell.gif").exists()
