"""Out of memory is the machine's failure: exit code 1, one line naming the cause, no traceback, and a run
folder that is either not made or starts again with the same command (README "Reliability").

The real case runs `gdas` in a subprocess whose address space is capped (RLIMIT_AS) a little above what
torch and the command need to start, with options in range that need far more: a network too wide to
build, or a batch too large for its first step.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gdas_cli.cli._app import describe_failure
from gdas_cli.errors import environment_cause
from gdas_cli.rundir import lock_holder, never_checkpointed

resource = pytest.importorskip("resource")  # POSIX only

HEADROOM = 3 << 29  # 1.5 GiB above the imports: room for the data and a small model, not for what is asked
TINY = ["--layers", "3", "--epochs", "1", "--limit-eval-batches", "1", "-q"]

# torch's ways of saying it, each classified as the machine's
OOM_ERRORS = {
    "MemoryError": MemoryError(),
    "CPU allocator (POSIX)": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 1179648000 bytes. Error code 12 (Cannot allocate memory)"
    ),
    "CPU allocator (Windows)": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:81] data. DefaultCPUAllocator: not enough memory: you tried to allocate "
        "1981808640 bytes."
    ),
    "oneDNN kernel": RuntimeError("std::bad_alloc"),
    "CUDA": RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity)"),
}


@pytest.mark.parametrize("err", OOM_ERRORS.values(), ids=OOM_ERRORS.keys())
def test_every_form_of_out_of_memory_is_the_machines(err):
    assert environment_cause(err) is not None and environment_cause(err).startswith("out of memory")
    line = describe_failure(err)
    assert line.startswith("out of memory") and "\n" not in line


def _imports_peak() -> int:
    """Bytes of address space a process has used once torch, the CLI and the digits loader are imported."""
    code = (
        "import torch, sklearn.datasets, gdas_cli.cli, gdas_cli.engine, gdas_cli.training.image\n"
        "print(open('/proc/self/status').read())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    status = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    return int(re.search(r"VmPeak:\s+(\d+) kB", status).group(1)) * 1024


def _gdas_in_little_memory(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-c", "from gdas_cli.cli import main; main()", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GDAS_DEBUG", None)
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, preexec_fn=cap, timeout=300)


def _one_out_of_memory_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: out of memory") and "--batch-size" in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def memory_limit() -> int:
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS caps the address space on Linux only")
    return _imports_peak() + HEADROOM


def test_a_network_too_wide_to_build_is_one_line_and_writes_nothing(memory_limit, tmp_path):
    run = tmp_path / "run"
    # C=4096 (in range): the cells' pointwise convolutions alone are gigabytes, built before the run folder is made
    args = ["train", "digits", "-g", "gdas_frc", "-C", "4096", "--batch-size", "8", *TINY, "--run-dir", str(run)]
    _one_out_of_memory_line(_gdas_in_little_memory(memory_limit, *args, cwd=tmp_path))
    assert not run.exists() and list(tmp_path.iterdir()) == []


def test_a_batch_too_large_for_its_first_step_leaves_a_folder_that_starts_again(memory_limit, tmp_path):
    run = tmp_path / "run"
    # a batch of all 1500 training images at C=256: one feature map is 1500 x 256 x 32 x 32 floats (1.5 GiB)
    args = ["train", "digits", "-g", "gdas_frc", "-C", "256", "--batch-size", "1500", *TINY, "--run-dir", str(run)]
    _one_out_of_memory_line(_gdas_in_little_memory(memory_limit, *args, cwd=tmp_path))
    # what a run writes before its first checkpoint, no lock, no temporary: the same command starts it afresh
    assert never_checkpointed(run) and lock_holder(run) is None, sorted(p.name for p in run.rglob("*"))
    assert not (run / "checkpoint" / "last").exists()
    _one_out_of_memory_line(_gdas_in_little_memory(memory_limit, *args, cwd=tmp_path))  # not "the folder exists"
    assert never_checkpointed(run)
