"""Hostile and careless input, family by family: every case is exit code 2 (1 for faults of the
machine), one stderr line naming the file or option, no traceback, and no file changed or left
behind. Commands run in-process where they can (fast); a few need a subprocess (a limit on file
size, a second process holding a run's lock)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, gdas
from safetensors.torch import load_file, save_file

TINY_TRAIN = ["-C", "4", "--layers", "3", "--batch-size", "32", "--limit-train-batches", "2",
              "--limit-eval-batches", "1", "--epochs", "1", "--device", "cpu", "-q"]


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its sha256 (and every folder), to prove nothing changed."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def refused(result, *needles: str) -> str:
    return assert_one_line_error(result, *needles)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny training run on the built-in digits (C=4, 3 cells, 1 epoch of 2 batches)."""
    run = tmp_path_factory.mktemp("adversarial") / "train-run"
    result = gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", run)
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# ------------------------------------------------------------------------------- genotype files


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


GENOTYPE_CASES = {
    "nested 200,000 deep": (lambda p: p.write_text(_deep(200_000)), "nested too deeply"),
    "a 5,000-digit number": (lambda p: p.write_text('{"schema_version": ' + "9" * 5000 + "}"), "not valid JSON"),
    "binary bytes": (lambda p: p.write_bytes(b"\x80\x81\xfe\xff" * 100), "not UTF-8"),
    "larger than a genotype can be": (lambda p: p.write_text(" " * (1024 * 1024 + 10)), "larger than"),
    "schema_version true": (
        lambda p: p.write_text(json.dumps({**json.loads(_zoo_text("gdas")), "schema_version": True})),
        "schema_version",
    ),
    "10,000 nodes": (lambda p: p.write_text(_many_nodes(10_000)), "wrong number of nodes"),
    "a folder": (lambda p: p.mkdir(), "not a regular file"),
    "empty": (lambda p: p.write_text(""), "not valid JSON"),
}


def _zoo_text(name: str) -> str:
    from gdas_cli.genotype import load_local_genotype

    return load_local_genotype(name).to_json()


def _many_nodes(n: int) -> str:
    data = json.loads(_zoo_text("gdas"))
    data["normal"]["nodes"] = [[["skip_connect", 0], ["skip_connect", 1]]] * n
    return json.dumps(data)


@pytest.mark.parametrize("case", sorted(GENOTYPE_CASES))
@pytest.mark.parametrize("command", ["show", "info", "train", "export"])
def test_bad_genotype_files(case, command, tmp_path):
    write, needle = GENOTYPE_CASES[case]
    path = tmp_path / "cell.json"
    write(path)
    before = tree_digest(tmp_path)
    args = {
        "show": ["genotypes", "show", path],
        "info": ["genotypes", "info", path],
        "train": ["train", "digits", "-g", path, "--run-dir", tmp_path / "never", "-q"],
        "export": ["export", path, "-o", tmp_path / "never-out"],
    }[command]
    if command == "export" and case == "a folder":
        needle = "not a training run"  # export also takes run folders, so it says what a folder should be
    refused(gdas(*args), str(path), needle)
    assert tree_digest(tmp_path) == before


def test_genotype_from_a_device_file_is_bounded():
    refused(gdas("genotypes", "show", "/dev/zero"), "/dev/zero", "not a regular file")


# ------------------------------------------------------------------------- checkpoints and runs


def _flip_a_tensor_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the end of the file is tensor data, not the header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["eval", "export", "resume"])
def test_flipped_bytes_in_checkpoint_weights_are_refused(run_copy, command, tmp_path):
    for weights in (run_copy / "checkpoint").glob("*/model.safetensors"):  # every checkpoint the run has
        _flip_a_tensor_byte(weights)
    before = tree_digest(run_copy)
    args = {
        "eval": ["eval", run_copy],
        "export": ["export", run_copy, "-o", tmp_path / "out"],
        "resume": ["train", "digits", "--resume", run_copy, "-q"],
    }[command]
    refused(gdas(*args), "model.safetensors", "sha256")
    assert tree_digest(run_copy) == before
    assert not (tmp_path / "out").exists()


def _rewrite_header(path: Path, change) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    tensors = load_file(str(path))
    change(metadata)
    save_file(tensors, str(path), metadata)


HEADER_CASES = {
    "no gdas_genotype": (lambda m: m.pop("gdas_genotype"), "no gdas_genotype"),
    "C is a string": (lambda m: m.update(gdas_network=json.dumps({**json.loads(m["gdas_network"]), "C": "8"})),
                      "C must be int"),
    "args nested deep": (lambda m: m.update(gdas_network=_deep(100_000)), "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_bad_weights_headers(case, tmp_path, tiny_checkpoint):
    path = tmp_path / "model.safetensors"
    path.write_bytes(tiny_checkpoint("gdas_frc").read_bytes())
    change, needle = HEADER_CASES[case]
    _rewrite_header(path, change)
    refused(gdas("eval", path, "--dataset", "digits"), str(path), needle)
    refused(gdas("export", path, "-o", tmp_path / "out"), str(path), needle)
    assert not (tmp_path / "out").exists()


def test_config_whose_task_is_a_list(run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "task": [1, 2]}))
    refused(gdas("eval", run_copy), "config.json", "not a gdas run config")
    refused(gdas("train", "digits", "--resume", run_copy), "config.json", "not a gdas run config")


def test_run_dir_that_is_a_file(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    refused(gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", target), str(target), "is a file")
    assert target.read_text() == "x"


def test_run_dir_under_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    refused(gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", blocker / "run"), "--run-dir")


def test_a_live_lock_stops_a_second_process(run_copy):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_copy / ".lock").write_text(f"{holder.pid}\n")
        refused(gdas("train", "digits", "--resume", run_copy, "-q"), str(run_copy), f"process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_lock_and_stale_temporaries_are_cleaned(run_copy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_copy / ".lock").write_text(f"{dead.pid}\n")
    stale = run_copy / "checkpoint" / ".last.tmp-killed"
    stale.mkdir()
    result = gdas("train", "digits", "--resume", run_copy, "-q")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not (run_copy / ".lock").exists()


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "train", "engine": {}, "task": {}}))
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / ".last.tmp-x").mkdir()
    refused(gdas("train", "digits", "--resume", run), "never wrote a checkpoint", "--run-dir")
    result = gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", run)
    assert result.exit_code == 0, result.output
    assert (run / "checkpoint" / "last" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------- options

OPTION_CASES = [
    (["search", "cnn", "--dataset", "digits", "--lr", "inf"], "--lr"),
    (["search", "cnn", "--dataset", "digits", "--arch-beta1", "2"], "--arch-beta1"),
    (["search", "cnn", "--dataset", "digits", "--momentum", "5"], "--momentum"),
    (["search", "cnn", "--dataset", "digits", "--grad-clip", "-1"], "--grad-clip"),
    (["search", "cnn", "--dataset", "digits", "--tau-min", "20", "--tau-max", "1"], "--tau-min"),
    (["search", "cnn", "--dataset", "digits", "--workers", "-1"], "--workers"),
    (["search", "cnn", "--dataset", "digits", "-C", "80000"], "--channels"),
    (["train", "digits", "-g", "gdas_frc", "--lr", "nan"], "--lr"),
    (["train", "digits", "-g", "gdas_frc", "--momentum", "5"], "--momentum"),
    (["train", "digits", "-g", "gdas_frc", "-C", "80000"], "--channels"),
    (["train", "demo-text", "-g", "gdas_rnn", "--lr", "inf"], "--lr"),
]


@pytest.mark.parametrize("args, option", OPTION_CASES, ids=[" ".join(a[-2:]) for a, _ in OPTION_CASES])
def test_bad_numbers_are_refused_before_anything_is_written(args, option, tmp_path):
    run = tmp_path / "run"
    refused(gdas(*args, "--run-dir", run, "-q"), option)
    assert not run.exists()


# ------------------------------------------------------------------------------------- outputs


def test_export_never_replaces_a_run(run_copy, tmp_path):
    before = tree_digest(run_copy)
    refused(gdas("export", run_copy, "-o", run_copy, "--overwrite"), "--output", "reads")
    refused(gdas("export", run_copy, "-o", run_copy / "checkpoint", "--overwrite"), "--output", "reads")
    holder = tmp_path / "runs"
    holder.mkdir()
    refused(gdas("export", "gdas_frc", "-o", run_copy, "--overwrite"), "--output", "run directory")
    assert tree_digest(run_copy) == before


def test_derive_never_writes_into_another_run_or_over_a_file(run_copy, tmp_path):
    search = tmp_path / "search"
    result = gdas("search", "cnn", "--dataset", "digits", "--epochs", "1", "--limit-train-batches", "1",
                  "-C", "8", "--batch-size", "16", "--run-dir", search, "-q")
    assert result.exit_code == 0, result.output
    before = tree_digest(run_copy)
    refused(gdas("derive", search, "-o", run_copy / "config.json"), "--output", "run directory")
    refused(gdas("derive", search, "-o", search / "cell.json"), "--output", "reads")
    existing = tmp_path / "cell.json"
    existing.write_text("mine")
    refused(gdas("derive", search, "-o", existing), "--output", "--overwrite")
    assert existing.read_text() == "mine"
    (tmp_path / "a-folder").mkdir()
    refused(gdas("derive", search, "-o", tmp_path / "a-folder"), "--output", "is a folder")
    refused(gdas("derive", search, "-o", existing / "cell.json"), "--output", "not a folder")
    assert gdas("derive", search, "-o", existing, "--overwrite").exit_code == 0
    refused(gdas("plot", "alphas", search, "-o", search / "alphas.png"), "--output")
    refused(gdas("genotypes", "plot", "gdas", "-o", existing), "--output", "--overwrite")
    for kind in ("cnn", "rnn"):  # checked before the search starts, and nothing is made
        refused(gdas("search", kind, "--run-dir", tmp_path / f"new-{kind}", "-o", existing), "--output", "--overwrite")
        assert not (tmp_path / f"new-{kind}").exists()
    assert existing.read_text() != "mine"  # the one --overwrite above replaced it
    assert tree_digest(run_copy) == before


# -------------------------------------------------------------------------------------- faults


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))  # smaller than the tiny weights


def test_file_size_limit_during_a_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    args = ["train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", "from gdas_cli.cli import main; main()", *args], env=env,
                            capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and "file-size limit" in lines[0], result.stderr
    assert not any(run.rglob("*.tmp")) and not any(p.name.startswith(".last.tmp") for p in run.rglob("*"))


def test_unforeseen_errors_are_one_line_with_a_debug_hint(monkeypatch):
    import gdas_cli.genotype

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(gdas_cli.genotype, "zoo_genotypes", broken)
    result = gdas("genotypes", "list")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "GDAS_DEBUG=1" in result.stderr and "ZeroDivisionError" in result.stderr


# -------------------------------------------------------------------------------------- Hub files


@pytest.fixture
def hub_repo(loopback_hub, tiny_checkpoint, tmp_path, monkeypatch):
    """put(name, change) -> a repo at tag v1 holding a real published folder, one file changed."""
    from huggingface_hub import constants

    from gdas_cli.hub import HubNetwork
    from gdas_cli.weights import load_network

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    folder = tmp_path / "published"
    HubNetwork.from_network(load_network(tiny_checkpoint("gdas_frc"))).save_folder(folder)
    good = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def put(name: str, files: dict[str, bytes]) -> str:
        loopback_hub.state.put_files(f"adversarial/{name}", {**good, **files}, tag="v1")
        return f"adversarial/{name}@v1"

    return put, good


def _config_with(good: dict[str, bytes], change) -> bytes:
    config = json.loads(good["config.json"])
    change(config)
    return json.dumps(config).encode()


def test_hub_files(hub_repo):
    put, good = hub_repo
    ref = put("binary-config", {"config.json": b"\x80\xff" * 50})
    refused(gdas("eval", "--from-hub", ref), ref, "not UTF-8")
    ref = put("binary-genotype", {"genotype.json": b"\x80\xff" * 50})
    refused(gdas("genotypes", "show", f"hf-hub:{ref}"), ref, "not UTF-8")
    ref = put("deep-config", {"config.json": _deep(200_000).encode()})
    refused(gdas("eval", "--from-hub", ref), ref, "nested too deeply")
    ref = put("no-sha", {"config.json": _config_with(good, lambda c: c.pop("weights"))})
    refused(gdas("eval", "--from-hub", ref), ref, "no weights.sha256")
    ref = put("local-dataset", {"config.json": _config_with(good, lambda c: c.update(dataset="folder:/etc"))})
    refused(gdas("eval", "--from-hub", ref), ref, "not a known data set")


def _rewrite_checkpoint(folder: Path, change) -> None:
    """Change a checkpoint's files and record their new sha256, as a careful tamperer would."""
    from gdas_cli.rundir import PROGRESS_FILE, checkpoint_digests

    change(folder)
    progress = json.loads((folder / PROGRESS_FILE).read_text())
    (folder / PROGRESS_FILE).write_text(json.dumps({**progress, "sha256": checkpoint_digests(folder)}))


@pytest.mark.parametrize("damage", ["missing keys", "wrong types"])
def test_state_file_of_the_right_format_but_wrong_content(run_copy, damage):
    import torch

    def change(folder: Path) -> None:
        state = torch.load(folder / "state.pt", weights_only=True)
        if damage == "missing keys":
            del state["history"], state["task"]
        else:
            state["epoch"] = "one"
        torch.save(state, folder / "state.pt")

    _rewrite_checkpoint(run_copy / "checkpoint" / "last", change)
    before = tree_digest(run_copy)
    refused(gdas("train", "digits", "--resume", run_copy, "--epochs", "1", "-q"), "state.pt")
    assert tree_digest(run_copy) == before


def test_resume_checks_the_weights_header(run_copy, tiny_checkpoint):
    def change(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(tiny_checkpoint("gdas").read_bytes())

    _rewrite_checkpoint(run_copy / "checkpoint" / "last", change)
    refused(gdas("train", "digits", "--resume", run_copy, "-q"), "model.safetensors", "gdas@1.0.0")


def test_a_pickle_in_the_state_file_is_one_line(run_copy):
    def change(folder: Path) -> None:
        import pickle

        (folder / "state.pt").write_bytes(pickle.dumps(Path("/etc")))

    _rewrite_checkpoint(run_copy / "checkpoint" / "last", change)
    refused(gdas("train", "digits", "--resume", run_copy, "-q"), "state.pt")


def test_frc_channel_rule_is_one_rule_naming_the_option():
    refused(gdas("genotypes", "info", "gdas_frc", "-C", "9"), "--channels", "9", "divisible by 4")
    refused(gdas("train", "digits", "-g", "gdas_frc", "-C", "9"), "--channels", "9", "divisible by 4")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_in_a_folder_dataset_is_named(tmp_path, workers):
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    broken = root / "train" / "a" / "9.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    run = tmp_path / "run"
    i = TINY_TRAIN.index("--limit-eval-batches")
    folder_options = TINY_TRAIN[:i] + TINY_TRAIN[i + 2 :]  # `train folder` has no --limit-eval-batches
    result = gdas("train", f"folder:{root}", "-g", "gdas_frc", *folder_options, "--workers", workers, "--run-dir", run)
    refused(result, str(broken), "not a readable image")


def test_a_diverging_run_stops_with_one_line_and_keeps_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    result = gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--lr", "1e30", "--grad-clip", "0",
                  "--run-dir", run)
    refused(result, "not finite", "--lr")
    assert not (run / "checkpoint" / "last").exists()


# --------------------------------------------------------------------------------- network faults
# The real huggingface_hub client against the loopback Hub, which cuts or stalls transfers on a per-test
# switch (tests/hub_server.py: Fault). A download retries and resumes, or fails with one line; the cache
# only ever holds complete files; a push leaves no tag on an incomplete commit and can be run again.

FAULT_REPO = "faults/model"
WEIGHTS_GET = r"/resolve/.*/model\.safetensors$"


@pytest.fixture(scope="module")
def fault_repo(loopback_hub, tiny_checkpoint, tmp_path_factory):
    """faults/model with v1 (gdas_frc weights) and v2 (gdas weights), as published folders; their weights files."""
    from gdas_cli.hub import HubNetwork
    from gdas_cli.weights import load_network

    weights = {}
    for tag, genotype in (("v1", "gdas_frc"), ("v2", "gdas")):
        folder = tmp_path_factory.mktemp(f"fault-{tag}")
        HubNetwork.from_network(load_network(tiny_checkpoint(genotype))).save_folder(folder)
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        loopback_hub.state.put_files(FAULT_REPO, files, tag=tag)
        weights[tag] = files["model.safetensors"]
    return weights


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _complete_files_only(cache: Path, fault_repo: dict[str, bytes]) -> None:
    """No temporary download is left, and every cached weights file is a whole published one."""
    assert [p for p in cache.rglob("*") if p.name.endswith(".incomplete")] == []
    for path in cache.rglob("model.safetensors"):
        assert path.read_bytes() in fault_repo.values(), path


def _weights_gets(hub) -> int:
    return sum(1 for method, path in hub.state.requests if method == "GET" and path.endswith("/model.safetensors"))


def test_a_download_cut_mid_file_resumes_and_loads_the_whole_file(fault_repo, hub_cache, hub_faults, loopback_hub):
    from gdas_cli import create_model
    from hub_server import Fault

    before = _weights_gets(loopback_hub)
    cut = hub_faults(Fault("cut", "GET", WEIGHTS_GET, after=len(fault_repo["v1"]) // 2))
    model = create_model(f"hf-hub:{FAULT_REPO}@v1", pretrained=True)  # sha256-checked against config.json
    assert cut.spoilt == 1 and _weights_gets(loopback_hub) - before == 2  # the second GET resumed (Range)
    assert model.genotype.ref == "gdas_frc@1.0.0"
    _complete_files_only(hub_cache, fault_repo)


def test_a_stalled_download_is_retried(fault_repo, hub_cache, hub_faults, monkeypatch):
    from huggingface_hub import constants

    from gdas_cli import create_model
    from hub_server import Fault

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)  # seconds without data before a retry
    stall = hub_faults(Fault("stall", "GET", WEIGHTS_GET, after=1000))
    assert create_model(f"hf-hub:{FAULT_REPO}@v1", pretrained=True).genotype.ref == "gdas_frc@1.0.0"
    assert stall.spoilt == 1
    _complete_files_only(hub_cache, fault_repo)


def test_a_download_cut_for_good_is_one_line_and_offline_serves_the_last_complete_revision(
    fault_repo, hub_cache, hub_faults, loopback_hub, monkeypatch
):
    from huggingface_hub import constants

    from gdas_cli import GdasError, create_model
    from hub_server import Fault

    create_model(f"hf-hub:{FAULT_REPO}@v1", pretrained=True)  # v1 complete in the cache
    hub_faults(Fault("cut", "GET", WEIGHTS_GET, after=len(fault_repo["v2"]) // 2))  # mid-file ...
    hub_faults(Fault("cut", "GET", WEIGHTS_GET, after=0, times=None))  # ... then every resume
    result = gdas("eval", "--from-hub", f"{FAULT_REPO}@v2", "--limit-batches", "1")
    line = assert_one_line_error(result, f"{FAULT_REPO}@v2", "model.safetensors", "was cut", code=1)
    assert "nothing partial is kept" in line
    _complete_files_only(hub_cache, fault_repo)

    requests = len(loopback_hub.state.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    assert create_model(f"hf-hub:{FAULT_REPO}@v1", pretrained=True).genotype.ref == "gdas_frc@1.0.0"
    with pytest.raises(GdasError) as info:
        create_model(f"hf-hub:{FAULT_REPO}@v2", pretrained=True)
    assert info.value.exit_code == 1 and "not in the local cache" in str(info.value)
    assert "@v1 (commit" in str(info.value) and "v2 (commit" not in str(info.value)  # only complete revisions
    assert len(loopback_hub.state.requests) == requests  # offline: nothing reached the Hub


def test_a_download_killed_mid_file_leaves_nothing_that_loads(fault_repo, hub_cache, hub_faults, loopback_hub):
    import signal
    import time

    from gdas_cli import create_model
    from hub_server import Fault

    stall = hub_faults(Fault("stall", "GET", WEIGHTS_GET, after=len(fault_repo["v2"]) // 2))
    code = f"import gdas_cli; gdas_cli.create_model('hf-hub:{FAULT_REPO}@v2', pretrained=True)"
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_DOWNLOAD_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (stall.spoilt and any(hub_cache.rglob("*.incomplete"))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(hub_cache.rglob("*.incomplete")), "the download never started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not [p for p in hub_cache.rglob("model.safetensors") if "snapshots" in p.parts]  # never renamed in
    loopback_hub.state.clear_faults()
    model = create_model(f"hf-hub:{FAULT_REPO}@v2", pretrained=True)  # fetched whole, sha256-checked
    assert model.genotype.ref == "gdas@1.0.0"
    for path in hub_cache.rglob("model.safetensors"):
        assert path.read_bytes() == fault_repo["v2"]


@pytest.mark.slow
def test_a_download_stalled_for_good_is_one_line(fault_repo, hub_cache, hub_faults, monkeypatch):
    from huggingface_hub import constants

    from hub_server import Fault

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    hub_faults(Fault("stall", "GET", WEIGHTS_GET, after=0, times=None))
    result = gdas("eval", "--from-hub", f"{FAULT_REPO}@v1")
    assert_one_line_error(result, f"{FAULT_REPO}@v1", "model.safetensors", "stalled", code=1)
    _complete_files_only(hub_cache, fault_repo)


# a push: preupload, then ONE commit (with every file), then the tag; each can be cut or stall


@pytest.fixture
def push_token(monkeypatch, loopback_hub):
    from hub_server import TOKENS

    import gdas_cli.hub

    monkeypatch.setenv("HF_TOKEN", next(iter(TOKENS)))
    monkeypatch.setattr(gdas_cli.hub, "PUSH_TIMEOUT_S", 1.0)  # seconds a push waits for each answer


def _push(repo: str, tag: str = "v1"):
    return gdas("export", "gdas_frc", "--push-to-hub", repo, "--tag", tag)


def _tagged_files(hub, repo: str, tag: str) -> set[str]:
    state = hub.state.repos[repo]
    return set(state.commits[state.tags[tag]].files)


PUSHED = {".gitattributes", "README.md", "cell.png", "config.json", "genotype.json"}


def test_a_push_cut_mid_commit_is_retried_into_one_tagged_commit(loopback_hub, hub_faults, push_token):
    from hub_server import Fault

    cut = hub_faults(Fault("cut", "POST", r"/commit/", after=1000))
    result = _push("faults/cut-commit")
    assert result.exit_code == 0, result.output
    assert cut.spoilt == 1 and result.stderr == ""  # the client's retries are not printed
    repo = loopback_hub.state.repos["faults/cut-commit"]
    assert len(repo.commits) == 2 and _tagged_files(loopback_hub, "faults/cut-commit", "v1") == PUSHED


def test_a_push_whose_tagging_is_cut_can_be_run_again(loopback_hub, hub_faults, push_token):
    from hub_server import Fault

    hub_faults(Fault("cut", "POST", r"/tag/", after=None))
    line = assert_one_line_error(_push("faults/cut-tag"), "faults/cut-tag@v1", "was cut while tagging", code=1)
    assert "was pushed but not tagged" in line and "run the same command again" in line
    assert loopback_hub.state.repos["faults/cut-tag"].tags == {}  # no tag on anything
    result = _push("faults/cut-tag")
    assert result.exit_code == 0, result.output
    assert _tagged_files(loopback_hub, "faults/cut-tag", "v1") == PUSHED


def test_a_lost_answer_to_the_tag_is_checked_not_reported(loopback_hub, hub_faults, push_token):
    from hub_server import Fault

    hub_faults(Fault("lose_answer", "POST", r"/tag/"))
    result = _push("faults/lost-tag")
    assert result.exit_code == 0, result.output
    assert _tagged_files(loopback_hub, "faults/lost-tag", "v1") == PUSHED


def test_a_stalled_push_times_out_in_one_line_and_can_be_run_again(loopback_hub, hub_faults, push_token):
    from hub_server import Fault

    hub_faults(Fault("stall", "POST", r"/tag/", after=None))
    assert_one_line_error(_push("faults/stalled-tag"), "faults/stalled-tag@v1", "stalled while tagging", code=1)
    assert loopback_hub.state.repos["faults/stalled-tag"].tags == {}
    assert _push("faults/stalled-tag").exit_code == 0
    assert _tagged_files(loopback_hub, "faults/stalled-tag", "v1") == PUSHED


@pytest.mark.slow
def test_a_push_cut_for_good_leaves_no_commit_and_no_tag(loopback_hub, hub_faults, push_token):
    from hub_server import Fault

    hub_faults(Fault("cut", "POST", r"/commit/", after=1000, times=None))  # the client retries 5 times
    line = assert_one_line_error(_push("faults/cut-for-good"), "faults/cut-for-good@v1", "was cut while pushing", code=1)
    assert "no tag was made" in line
    repo = loopback_hub.state.repos["faults/cut-for-good"]
    assert len(repo.commits) == 1 and repo.tags == {}  # only the repo's initial commit
    loopback_hub.state.clear_faults()
    assert _push("faults/cut-for-good").exit_code == 0
    assert _tagged_files(loopback_hub, "faults/cut-for-good", "v1") == PUSHED


# ------------------------------------------------------------------------- exit-code consistency
# One cause, one exit code, from every command: 2 for bad input, 1 for a failure of the machine, each
# one stderr line naming the path and the cause, and nothing half-written left. The faults are real:
# a tmpfs that is full or read-only (mounting needs root, as CI has; skipped otherwise) and a
# file-size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past it fails with EFBIG).


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(name, size_kib, read_only=False) -> a fresh tmpfs folder, unmounted after the test."""
    mounted = []

    def mount(name: str, size_kib: int, read_only: bool = False) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        folder = tmp_path / name
        folder.mkdir()
        options = f"size={size_kib}k,mode=0777" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> None:
    """Write until the file system says it is full."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC


def _leftovers(folder: Path) -> list[str]:
    """Temporary files and folders of a write that failed (they must all be gone)."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith((".tmp", ".incomplete")) or ".tmp-" in p.name]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("adversarial-search") / "search"
    result = gdas("search", "cnn", "--dataset", "digits", "--epochs", "1", "--limit-train-batches", "1", "-C", "8",
                  "--batch-size", "16", "--run-dir", run, "-q")
    assert result.exit_code == 0, result.output
    return run


def test_a_full_disk_while_the_state_file_is_written_is_one_line(trained, mount_tmpfs):
    """The reported case: weights fit, state.pt does not (torch's own writer said 'unexpected pos')."""
    weights = (trained / "checkpoint" / "last" / "model.safetensors").stat().st_size
    state = (trained / "checkpoint" / "last" / "state.pt").stat().st_size
    assert state > 64 * 1024
    disk = mount_tmpfs("disk", weights // 1024 + 64)  # config, metrics and weights fit; state.pt does not
    run = disk / "run"
    result = gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", run)
    line = assert_one_line_error(result, str(run / "checkpoint" / "last" / "state.pt"), "the disk is full", code=1)
    assert "no last checkpoint was written" in line and "starts the run again" in line
    assert not (run / "checkpoint" / "last").exists() and _leftovers(disk) == []
    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space again
    result = gdas("train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", run)  # the same command
    assert result.exit_code == 0, result.output


def _writing_commands(trained: Path, searched: Path, target: Path) -> dict[str, list]:
    """Every command that writes, each told to write under `target`."""
    return {
        "train": ["train", "digits", "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", target / "run"],
        "search": ["search", "cnn", "--dataset", "digits", "--epochs", "1", "--limit-train-batches", "1", "-C", "8",
                   "--batch-size", "16", "--run-dir", target / "search", "-q"],
        "derive": ["derive", searched, "-o", target / "cell.json"],
        "export": ["export", trained, "-o", target / "export"],
        "genotypes plot": ["genotypes", "plot", "gdas", "-o", target / "cell.png"],
        "plot alphas": ["plot", "alphas", searched, "-o", target / "alphas.png"],
        "eval --from-hub": ["eval", "--from-hub", f"{FAULT_REPO}@v1", "--limit-batches", "1"],  # into the cache
    }


@pytest.mark.parametrize("cause", ["disk full", "read-only", "file-size limit"])
def test_one_cause_one_exit_code_from_every_command(cause, trained, searched, fault_repo, mount_tmpfs, tmp_path,
                                                    monkeypatch):
    from huggingface_hub import constants

    if cause == "file-size limit":
        target = tmp_path / "limited"
        target.mkdir()
    else:
        target = mount_tmpfs("fault", 256, read_only=cause == "read-only")
        if cause == "disk full":
            _fill(target)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(target / "hub-cache"))
    words = {"disk full": "the disk is full", "read-only": "read-only", "file-size limit": "file-size limit"}[cause]
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    outcomes = {}
    for name, args in _writing_commands(trained, searched, target).items():
        if cause == "file-size limit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))  # smaller than any file these write
        try:
            result = gdas(*args)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        outcomes[name] = (result.exit_code, lines[-1] if lines else "")
    for name, (code, line) in outcomes.items():
        assert code == 1 and words in line and str(target) in line, (name, code, line)
        assert "Traceback" not in line and "unexpected" not in line, (name, line)
    # (huggingface_hub may leave a temp copy of a ref file, refs/<tag>.<random>.tmp, which it never reads)
    assert [p for p in _leftovers(target) if "hub-cache" not in p] == []
    if (target / "hub-cache").exists():
        _complete_files_only(target / "hub-cache", fault_repo)


# Reads the machine fails: /proc/self/mem answers a read at offset 0 with EIO, as a failing disk does, so a
# link to it is a real input/output error in place of a genotype, a benchmark or an image.

EIO_SOURCE = Path("/proc/self/mem")


def _eio_link(path: Path) -> Path:
    if not EIO_SOURCE.exists():
        pytest.skip("no /proc/self/mem on this system")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(EIO_SOURCE)
    return path


def _eio_image_folder(root: Path) -> str:
    for split in ("train", "val"):
        for label in ("a", "b"):
            _eio_link(root / split / label / "x.png")
    return f"folder:{root}"


def _reading_commands(tmp_path: Path) -> dict[str, tuple[list, Path]]:
    """Every command that reads a user's file, each given one that fails with EIO; the path it must name."""
    cell = _eio_link(tmp_path / "cell.json")
    bench = _eio_link(tmp_path / "tss.pickle.pbz2")
    images = _eio_image_folder(tmp_path / "images")
    first_image = tmp_path / "images" / "train" / "a" / "x.png"
    return {
        "genotypes show": (["genotypes", "show", cell], cell),
        "genotypes info": (["genotypes", "info", cell], cell),
        "train -g": (["train", "digits", "-g", cell, *TINY_TRAIN, "--run-dir", tmp_path / "run-g"], cell),
        "export": (["export", cell, "-o", tmp_path / "export"], cell),
        "bench --nas-bench": (["bench", "nb201_resnet", "--nas-bench", bench], bench),
        "train folder:": (["train", images, "-g", "gdas_frc", *TINY_TRAIN, "--run-dir", tmp_path / "run-f"], first_image),
        "search --dataset folder:": (["search", "cnn", "--dataset", images, "--epochs", "1", "--run-dir",
                                      tmp_path / "search", "-q"], first_image),
    }


def test_an_io_error_while_reading_is_exit_1_from_every_command(tmp_path):
    pytest.importorskip("nats_bench")
    for name, (args, path) in _reading_commands(tmp_path).items():
        result = gdas(*args)
        line = assert_one_line_error(result, str(path), "input/output error", code=1)
        assert "not valid" not in line and "not a readable" not in line, (name, line)
    assert not any(tmp_path.glob("run-*")) and not (tmp_path / "export").exists() and not (tmp_path / "search").exists()


def test_the_same_bad_input_is_exit_2_from_every_command(tmp_path, searched):
    """A file that is not there, and a file that is there but wrong (its content, not the machine)."""
    missing = tmp_path / "missing.json"
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "gdas-genotype"')
    not_a_bench = tmp_path / "tss.pickle.pbz2"
    not_a_bench.write_bytes(b"BZh9 not a bz2 stream")
    for path, needle in ((missing, "no such"), (broken, "not valid JSON")):
        for args in (["genotypes", "show", path], ["genotypes", "info", path], ["export", path, "-o", tmp_path / "o"],
                     ["train", "digits", "-g", path, *TINY_TRAIN, "--run-dir", tmp_path / "r"],
                     ["bench", path, "--nas-bench", not_a_bench]):
            assert_one_line_error(gdas(*args), str(path), needle)
    pytest.importorskip("nats_bench")
    assert_one_line_error(gdas("bench", "nb201_resnet", "--nas-bench", not_a_bench), str(not_a_bench), "not a NATS-Bench")
    for args in (["derive", tmp_path / "no-run"], ["plot", "alphas", tmp_path / "no-run", "-o", tmp_path / "a.png"],
                 ["eval", tmp_path / "no-run"]):
        assert_one_line_error(gdas(*args), str(tmp_path / "no-run"))
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists() and not (tmp_path / "a.png").exists()
