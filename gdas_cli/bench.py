"""NAS-Bench-201 / NATS-Bench (topology space) look-ups: a cell's recorded accuracies, params, FLOPs, latency.

The benchmark files are bz2-compressed pickles, and unpickling runs whatever the file says. So they are
read only through the maintained `nats_bench` API (the optional `nas-bench` extra, imported inside the
functions that need it) and only from a path the user gave: nothing here downloads a benchmark or
falls back to a default location such as `$TORCH_HOME`, which `nats_bench.create(None, ...)` would do.

Two layouts are read (both written by AutoDL-Projects' `exps/NATS-Bench/tss-collect.py`): the
fast-mode folder `NATS-tss-v1_0-3ffb9-simple/` (`meta.pickle.pbz2` with the 15,625 arch strings, and
one `NNNNNN.pickle.pbz2` per cell, read on first look-up) and the single file
`NATS-tss-v1_0-3ffb9.pickle.pbz2` (read whole on open). NAS-Bench-201's `.pth` files are torch pickles
of another layout that only the older `nas_201_api` reads; the topology space and the cell indices are
the same in NATS-Bench.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import GdasEnvironmentError, GdasError, read_cause

INSTALL_HINT = 'pip install "gdas-cli[nas-bench]"'
META_FILE = "meta.pickle.pbz2"
CELL_FILE_SUFFIX = ".pickle.pbz2"
# The tss benchmark trains every cell with two schedules; `hp` names them by their epoch count
# (AutoDL-Projects configs/nas-benchmark/hyper-opts/12E.config and 200E.config). 200 is the paper's.
TOPOLOGY_HPS = ("12", "200")
BENCH_SOURCE = (
    "the benchmark is not shipped or downloaded: get NATS-Bench's topology files from the links in "
    "https://github.com/D-X-Y/NATS-Bench (NATS-tss-v1_0-3ffb9-simple.tar, unpacked with `tar xf` to the "
    "folder NATS-tss-v1_0-3ffb9-simple/ of 15,625 per-cell archives, or the single file "
    "NATS-tss-v1_0-3ffb9.pickle.pbz2) and pass it with --nas-bench PATH"
)

# What reading a user's file through nats_bench raises when the file is not what it should be: bz2 and
# pickle errors, and nats_bench's own checks (ValueError, KeyError, assert) on the unpickled objects.
_READ_ERRORS = (
    OSError,
    EOFError,
    pickle.UnpicklingError,
    ImportError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
)
_INFO_KEYS = {"train": "train-accuracy", "valid": "valid-accuracy", "test": "test-accuracy"}


@dataclass(frozen=True)
class BenchDataset:
    """One of the benchmark's four training setups, and the benchmark's names for the splits it reports."""

    name: str
    trained_on: str
    splits: dict[str, str]  # our label (train / valid / test) -> the benchmark's split name


BENCH_DATASETS: dict[str, BenchDataset] = {
    dataset.name: dataset
    for dataset in (
        BenchDataset(
            "cifar10-valid",
            "CIFAR-10 train half (25K); valid = the other 25K of CIFAR-10 train, test = CIFAR-10 test (10K)",
            {"train": "train", "valid": "x-valid", "test": "ori-test"},
        ),
        BenchDataset(
            "cifar10",
            "CIFAR-10 train + valid halves (50K); test = CIFAR-10 test (10K)",
            {"train": "train", "test": "ori-test"},
        ),
        BenchDataset(
            "cifar100",
            "CIFAR-100 train (50K); valid and test = two 5K halves of CIFAR-100 test",
            {"train": "train", "valid": "x-valid", "test": "x-test"},
        ),
        BenchDataset(
            "ImageNet16-120",
            "ImageNet16-120 train (151.7K); valid and test = two 3K halves of its 6K test set",
            {"train": "train", "valid": "x-valid", "test": "x-test"},
        ),
    )
}


class Bench:
    """A benchmark opened once that answers many look-ups (a search looks one cell up per epoch).

    Build it with `Bench.open(path)`; the file or folder is read only through `nats_bench`.
    """

    def __init__(self, api: Any, path: Path) -> None:
        self._api = api
        self.path = path

    @classmethod
    def open(cls, path: Path | None) -> Bench:
        """Open the NATS-Bench topology benchmark the user named at `path`, through `nats_bench` only.

        A folder is opened in nats_bench's fast mode (only its meta file now, each cell's archive on its
        first look-up); a `.pickle.pbz2` file is read whole. Raises GdasError naming the path when it is
        missing or not such a benchmark, and when `nats_bench` is not installed.
        """
        path = _checked_path(path)
        nats_bench = _import_nats_bench()
        with _read_errors(path, f"--nas-bench {path}: not a NATS-Bench topology benchmark"):
            api = nats_bench.create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)
            first_arch = api[0] if len(api) else None
        if not isinstance(first_arch, str) or not first_arch.startswith("|"):
            raise GdasError(f"--nas-bench {path}: not a topology-space (tss) benchmark: its cells are not arch strings")
        return cls(api, path)

    def __len__(self) -> int:
        return len(self._api)

    def index(self, arch_str: str) -> int:
        """The benchmark's index of the cell `arch_str` (e.g. `|nor_conv_3x3~0|+|...|`)."""
        index = self._api.query_index_by_arch(arch_str)
        if index < 0:
            raise GdasError(f"{arch_str!r} is not a cell of the benchmark at {self.path}")
        return int(index)

    def lookup(self, arch_str: str, datasets: Sequence[str] | None = None, hp: str = "200") -> dict[str, Any]:
        """The cell's recorded results (plain JSON) per data set (default: all four), for `hp` epochs of training.

        Per data set: `accuracy` (top-1 in percent, the mean over the recorded seeds, for the splits the
        benchmark reports), `splits` (the benchmark's names for them), `params_M`, `flops_M`, `latency_s`
        (None when not recorded), `seeds` and `trained_on`.
        """
        names = _checked_datasets(datasets)
        hp = _checked_hp(hp)
        index = self.index(arch_str)
        records = self._cell_records(index, hp)
        return {
            "arch": arch_str,
            "index": index,
            "hp": hp,
            "benchmark": str(self.path),
            "datasets": {name: self._dataset_record(records, index, name, hp) for name in names},
        }

    def _cell_records(self, index: int, hp: str) -> Any:
        """The cell's nats_bench `ArchResults` for `hp`; in fast mode its archive is read on first use."""
        if self._api.fast_mode and index not in self._api.arch2infos_dict:
            self._load_cell(index)
        per_hp = self._api.arch2infos_dict.get(index)
        if per_hp is None:
            raise GdasError(f"--nas-bench {self.path}: has no results for cell {index}")
        if hp not in per_hp:
            recorded = ", ".join(map(str, per_hp))
            raise GdasError(f"--nas-bench {self.path}: cell {index} has no hp={hp} results (recorded: {recorded})")
        return per_hp[hp]

    def _load_cell(self, index: int) -> None:
        names = (f"{index:06d}{CELL_FILE_SUFFIX}", f"{index}{CELL_FILE_SUFFIX}")  # the two names nats_bench reads
        if not any((self.path / name).is_file() for name in names):
            raise GdasError(f"--nas-bench {self.path}: the archive has no file for cell {index} ({names[0]})")
        with _read_errors(self.path, f"--nas-bench {self.path}: cannot read cell {index}'s archive"):
            self._api.reload(str(self.path), index)

    def _dataset_record(self, records: Any, index: int, name: str, hp: str) -> dict[str, Any]:
        if name not in records.get_dataset_names():
            raise GdasError(f"--dataset {name}: cell {index} has no {name} results for hp={hp} in {self.path}")
        with _read_errors(self.path, f"--nas-bench {self.path}: cannot read cell {index}'s {name} results"):
            info = self._api.get_more_info(index, name, hp=hp, is_random=False)
            costs = self._api.get_cost_info(index, name, hp=hp)
            seeds = [int(seed) for seed in records.get_dataset_seeds(name)]
        accuracy = {label: float(info[key]) for label, key in _INFO_KEYS.items() if info.get(key) is not None}
        return {
            "trained_on": BENCH_DATASETS[name].trained_on,
            "accuracy": accuracy,
            "splits": {label: BENCH_DATASETS[name].splits[label] for label in accuracy},
            "params_M": float(costs["params"]),
            "flops_M": float(costs["flops"]),
            "latency_s": None if costs.get("latency") is None else float(costs["latency"]),
            "seeds": seeds,
        }


def lookup(arch_str: str, path: Path, datasets: Sequence[str] | None = None, hp: str = "200") -> dict[str, Any]:
    """Open the benchmark at the user's `path` (through `nats_bench` only) and look one cell up: see `Bench`."""
    return Bench.open(path).lookup(arch_str, datasets, hp)


def _checked_path(path: Path | None) -> Path:
    """The user's path, after the mistakes that need no unpickling to spot."""
    if path is None:
        raise GdasError(f"--nas-bench PATH is needed: {BENCH_SOURCE}")
    if not path.exists():
        raise GdasError(f"--nas-bench {path}: no such file or folder")
    if path.suffix == ".pth":
        raise GdasError(
            f"--nas-bench {path}: a NAS-Bench-201 .pth file, which nats_bench does not read; "
            "use NATS-Bench's NATS-tss-v1_0-3ffb9-simple folder (the same cells, the same indices)"
        )
    if path.suffix == ".tar":
        raise GdasError(f"--nas-bench {path}: unpack the archive first (tar xf {path.name}) and pass the folder")
    if path.name == META_FILE:
        raise GdasError(f"--nas-bench {path}: pass the folder that holds {META_FILE}, not the file itself")
    if path.is_dir() and not (path / META_FILE).is_file():
        raise GdasError(f"--nas-bench {path}: not a NATS-Bench topology folder (no {META_FILE})")
    return path


def _checked_datasets(datasets: Sequence[str] | None) -> list[str]:
    names = list(dict.fromkeys(datasets)) if datasets else list(BENCH_DATASETS)
    for name in names:
        if name not in BENCH_DATASETS:
            raise GdasError(f"--dataset {name}: not a NAS-Bench-201 data set; choose from {', '.join(BENCH_DATASETS)}")
    return names


def _checked_hp(hp: str) -> str:
    if str(hp) not in TOPOLOGY_HPS:
        raise GdasError(f"hp={hp}: the topology benchmark records {' and '.join(TOPOLOGY_HPS)} epochs of training")
    return str(hp)


def _import_nats_bench() -> ModuleType:
    try:
        import nats_bench
    except ImportError:
        raise GdasError(f"--nas-bench needs the nats_bench package: {INSTALL_HINT}") from None
    return nats_bench


@contextmanager
def _read_errors(path: Path, what: str) -> Iterator[None]:
    """Turn what a malformed benchmark file makes nats_bench raise into one GdasError line starting `what`;
    a read the machine failed (an I/O error, no memory) is a GdasEnvironmentError."""
    try:
        yield
    except (*_READ_ERRORS, MemoryError) as err:
        cause = read_cause(err)
        if cause is not None:
            raise GdasEnvironmentError(f"--nas-bench {path}: cannot read it: {cause}", path=path, cause=cause) from None
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise GdasError(f"{what} ({reason})") from None
