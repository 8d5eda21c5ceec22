"""The `gdas genotypes` commands end to end through the real Typer app, and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import gdas_cli

from gdas_cli.cli import app
from gdas_cli.genotype import load_local_genotype as load_genotype
from cli_helpers import assert_one_line_error, leaf_commands

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.parametrize("net, params", [("ptb", 22_960_000), ("wt2", 33_127_878)])
def test_info_counts_the_language_model_at_the_papers_sizes(net, params):
    """Tables 3-4: 23M parameters on PTB, 33M on WT2."""
    data = json.loads(run("genotypes", "info", "gdas_rnn", "--net", net, "--json").stdout)
    assert data == {**data, "genotype": "gdas_rnn@1.0.0", "net": net, "params": params}
    assert "22.96M params" in run("genotypes", "info", "gdas_rnn").stdout  # ptb by default


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
    assert_one_line_error(run("genotypes", "info", "gdas_rnn", "--net", "imagenet"), "--net", "rnn genotype")
    assert_one_line_error(run("genotypes", "info", "gdas", "--net", "ptb"), "--net", "cnn genotype")
    assert_one_line_error(run("genotypes", "info", "gdas_rnn", "-C", "16"), "--channels", "paper's sizes")
    assert_one_line_error(run("genotypes", "plot", "gdas", "-o", str(tmp_path / "cell.gif")), "--output", ".png")
    assert not (tmp_path / "cell.gif").exists()


LEAVES = list(leaf_commands(typer.main.get_command(app)))


def test_every_command_is_reached():
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"search cnn", "search rnn", "derive", "train digits", "train folder", "train ptb", "eval", "export",
            "genotypes list", "genotypes show", "genotypes info", "genotypes plot", "plot alphas"} <= names


@pytest.mark.parametrize("path, command", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_help_teaches_at_80_columns(path, command):
    """Every leaf's help has examples, and every option name is printed whole in an 80-column terminal."""
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "Examples" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    words = set(result.output.replace("│", " ").split())
    for param in command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                assert name in words, f"gdas {' '.join(path)}: {name} is cut at 80 columns"


@pytest.mark.parametrize("args, option, choice", [
    (("eval", "run"), "--device", "cuda"), (("search", "cnn"), "--sampling", "sample_cell"),
    (("derive", "run"), "--rule", "pairs"), (("genotypes", "info", "gdas"), "--net", "wt2"),
    (("train", "digits"), "--precision", "bf16"), (("export", "run"), "--format", "pt2"),
])
def test_fixed_choices_are_enforced_by_name(args, option, choice):
    """Options with fixed choices refuse anything else on one line that lists the choices."""
    assert_one_line_error(run(*args, option, "bogus"), option, "bogus", choice)


def test_choices_match_the_registries():
    from gdas_cli.bench import BENCH_DATASETS, TOPOLOGY_HPS
    from gdas_cli.cli import _choices
    from gdas_cli.engine import DEVICES, PRECISIONS
    from gdas_cli.export import FORMATS
    from gdas_cli.rundir import CHECKPOINTS
    from gdas_cli.sampler import SAMPLING_MODES
    from gdas_cli.search import LAYOUTS
    from gdas_cli.spaces import SPACES
    from gdas_cli.training.image import SCHEDULES

    def values(enum):
        return {member.value for member in enum}

    assert values(_choices.Device) == set(DEVICES) and values(_choices.Precision) == set(PRECISIONS)
    assert values(_choices.Sampling) == set(SAMPLING_MODES) and values(_choices.Layout) == set(LAYOUTS)
    rules = {rule for space in SPACES.values() for rule in space.derive_rules}  # every space's rules
    assert values(_choices.Rule) == rules and values(_choices.ExportFormat) == set(FORMATS)
    assert values(_choices.SpaceName) == set(SPACES) - {"darts_rnn"}  # search cnn's spaces
    assert values(_choices.Checkpoint) == set(CHECKPOINTS) and values(_choices.Schedule) == set(SCHEDULES)
    assert values(_choices.BenchHp) == set(TOPOLOGY_HPS) and values(_choices.BenchData) == set(BENCH_DATASETS)


def test_version_and_python_m(tmp_path):
    assert run("--version").stdout.strip() == f"gdas {gdas_cli.__version__}"
    done = subprocess.run([sys.executable, "-m", "gdas_cli", "--version"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"gdas {gdas_cli.__version__}", done.stderr
    assert "--install-completion" in run("--help").output


def test_help_does_not_import_torch():
    code = ("import sys; from gdas_cli.cli import main; sys.argv = ['gdas', 'train', 'cifar10', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert "TORCH False" in done.stderr, done.stderr
    code = code.replace("'train', 'cifar10', '--help'", "'genotypes', 'info', 'gdas_frc'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert "TORCH False" in done.stderr and "2.54M params" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- output a script can read
# Not on a terminal (a pipe, a file, the test runner) no line is folded at 80 columns, and the commands
# that write something say what in JSON with --json.

LONG = "a-folder-named-at-length-so-that-every-line-naming-a-file-in-it-passes-eighty-columns"


def test_in_a_pipe_export_names_its_folder_and_files_on_one_line(tmp_path):
    out = tmp_path / LONG / "gdas-frc"
    out.parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "gdas_cli", "export", "gdas_frc", "-o", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"wrote {out}: README.md, cell.png, config.json, genotype.json"]


def test_a_table_is_not_folded_when_read_by_a_script():
    listed = json.loads(run("genotypes", "list", "--json").stdout)
    table = run("genotypes", "list").stdout
    longest = max(listed, key=lambda g: len(g["source"]))
    assert len(longest["source"]) > 80
    rows = [line for line in table.splitlines() if f"│ {longest['name']} " in line]
    assert len(rows) == 1 and longest["source"] in rows[0]


@pytest.fixture(scope="module")
def long_search(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("long") / LONG / "search"
    result = run("search", "cnn", "--dataset", "digits", "--epochs", "1", "--limit-train-batches", "1", "-C", "8",
                 "--batch-size", "16", "--run-dir", str(run_dir), "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(run_dir / "genotype.json")]
    return run_dir


def test_paths_stay_on_one_line_and_json_says_what_was_written(long_search, tmp_path):
    folder = tmp_path / LONG
    folder.mkdir()
    written = {
        "derive": (["derive", str(long_search), "-o", str(folder / "cell.json")], folder / "cell.json"),
        "genotypes plot": (["genotypes", "plot", "gdas", "-o", str(folder / "cell.png")], folder / "cell.png"),
        "plot alphas": (["plot", "alphas", str(long_search), "-o", str(folder / "alphas.png")], folder / "alphas.png"),
    }
    for name, (args, path) in written.items():
        text = run(*args)
        assert text.exit_code == 0, (name, text.output)
        assert text.stdout.splitlines()[0].startswith(f"wrote {path}"), (name, text.stdout)
        as_json = run(*args, "--overwrite", "--json")
        assert as_json.exit_code == 0, (name, as_json.output)
        assert json.loads(as_json.stdout)["output"] == str(path), name
    derived = json.loads(run("derive", str(long_search), "--json").stdout)
    assert derived["output"] is None and derived["genotype"]["name"] == "searched" and derived["epoch"] == 1
    shown = run("genotypes", "show", str(folder / "cell.json"), "--format", "json")
    assert json.loads(shown.stdout) == json.loads((folder / "cell.json").read_text())
