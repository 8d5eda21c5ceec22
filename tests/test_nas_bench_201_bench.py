"""`gdas_cli.bench` against a small benchmark written by nats_bench's own classes, in the real layout.

How the archive is built (as AutoDL-Projects' `exps/NATS-Bench/tss-collect.py` builds the real one):
for each of three cells and each hp ("12": 12 epochs, "200": 200 epochs) an `ArchResults(index,
arch_str)` holds, per data set and seed, a `ResultsCount(dataset, None, train_acc1es, train_losses,
params, flops, arch_config, seed, epochs, None)` filled with `update_train_info` (per-epoch train
accuracies, losses and times), `update_eval` (`"x-valid@E"`, `"x-test@E"`, `"ori-test@E"` accuracies,
losses and times for every epoch E, on the splits the real benchmark evaluates for that data set) and
`update_latency`. The made-up accuracies rise linearly to a final value given by `recorded()`; params
and FLOPs depend on the cell and data set, latency on the seed. Then, with `nats_bench.pickle_save`:
the fast-mode folder gets `meta.pickle.pbz2` (`meta_archs` lists four arch strings, `arch2infos`
None, as tss-collect writes it) and `NNNNNN.pickle.pbz2` per cell holding
`OrderedDict(hp -> ArchResults.state_dict())`; the fourth cell is listed in the meta file but has
no archive. The single-file benchmark holds `meta_archs`, `arch2infos` (index -> the same
OrderedDict) and `evaluated_indexes` in one `.pickle.pbz2`. Both are opened by `gdas_cli.bench`, which
calls `nats_bench.create(path, "tss", fast_mode=..., verbose=False)`; the looked-up numbers must equal
the means over seeds of what was put in.

Skipped when nats_bench (the `nas-bench` extra) is not installed.
"""

from __future__ import annotations

import bz2
import json
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from statistics import mean

import pytest

from gdas_cli.bench import BENCH_DATASETS, Bench, lookup
from gdas_cli.errors import GdasError

nats_bench = pytest.importorskip("nats_bench")

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
NO_ARCHIVE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ARCHS = [RESNET, ALL_CONV3, ALL_SKIP, NO_ARCHIVE]
STORED = 3  # cells 0..2 have an archive; cell 3 is only listed in the meta file
EPOCHS = {"12": 12, "200": 200}
SEEDS = {"cifar10-valid": (777, 888), "cifar10": (777, 888), "cifar100": (777,), "ImageNet16-120": (777, 888, 999)}
# the splits the real benchmark evaluates per data set (tss-collect.py), with a made-up final accuracy
FINAL = {
    "cifar10-valid": {"train": 99.5, "x-valid": 90.0, "ori-test": 93.0},
    "cifar10": {"train": 99.75, "ori-test": 94.0},
    "cifar100": {"train": 90.0, "x-valid": 70.0, "x-test": 70.5, "ori-test": 70.25},
    "ImageNet16-120": {"train": 50.0, "x-valid": 45.0, "x-test": 45.5, "ori-test": 45.25},
}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def recorded(index: int, hp: str, dataset: str, seed: int, split: str) -> float:
    """The final accuracy written for one trial: lower for later cells, the 12-epoch run and the first seed."""
    return FINAL[dataset][split] - 4.0 * index - (3.0 if hp == "12" else 0.0) + 0.25 * SEEDS[dataset].index(seed)


def params_m(index: int, dataset: str) -> float:
    return 0.5 + 0.25 * index + 0.01 * CLASSES[dataset]


def flops_m(index: int, dataset: str) -> float:
    return 80.0 + 40.0 * index + (0.0 if dataset.startswith("cifar") else -60.0)


def latency_s(dataset: str, seed: int) -> float:
    return 0.01 + 0.002 * SEEDS[dataset].index(seed)


def trial(index: int, hp: str, dataset: str, seed: int):
    """One trained model's record, a nats_bench ResultsCount, as tss-collect.py fills it."""
    epochs = EPOCHS[hp]
    ramp = [(epoch + 1) / epochs for epoch in range(epochs)]
    train = {epoch: recorded(index, hp, dataset, seed, "train") * r for epoch, r in enumerate(ramp)}
    losses = {epoch: 2.0 - r for epoch, r in enumerate(ramp)}
    times = {epoch: 5.0 for epoch in range(epochs)}
    config = {"channel": 16, "num_cells": 5, "arch_str": ARCHS[index], "class_num": CLASSES[dataset]}
    result = nats_bench.ResultsCount(
        dataset, None, train, losses, params_m(index, dataset), flops_m(index, dataset), config, seed, epochs, None
    )
    result.update_train_info(train, None, losses, times)
    evals = [split for split in FINAL[dataset] if split != "train"]
    accs = {f"{s}@{e}": recorded(index, hp, dataset, seed, s) * r for s in evals for e, r in enumerate(ramp)}
    result.update_eval(accs, {key: 1.0 for key in accs}, {key: 0.5 for key in accs})
    result.update_latency([latency_s(dataset, seed)])
    return result


def cell_state(index: int, hps: tuple[str, ...] = ("12", "200")) -> OrderedDict:
    """What one NNNNNN.pickle.pbz2 holds: hp -> ArchResults.state_dict()."""
    per_hp = OrderedDict()
    for hp in hps:
        results = nats_bench.ArchResults(index, ARCHS[index])
        for dataset, seeds in SEEDS.items():
            for seed in seeds:
                results.update(dataset, seed, trial(index, hp, dataset, seed))
        per_hp[hp] = results.state_dict()
    return per_hp


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fast-mode folder laid out as NATS-tss-v1_0-3ffb9-simple/."""
    folder = tmp_path_factory.mktemp("bench") / "NATS-tss-test-simple"
    folder.mkdir()
    meta = {"meta_archs": ARCHS, "total_archs": len(ARCHS), "arch2infos": None, "evaluated_indexes": set()}
    nats_bench.pickle_save(meta, str(folder / "meta.pickle"))
    for index in range(STORED):
        nats_bench.pickle_save(cell_state(index), str(folder / f"{index:06d}.pickle"))
    return folder


@pytest.fixture(scope="module")
def single_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one-file layout of NATS-tss-v1_0-3ffb9.pickle.pbz2 (read whole, fast_mode=False)."""
    stem = tmp_path_factory.mktemp("bench") / "NATS-tss-test.pickle"
    infos = {index: cell_state(index) for index in range(STORED)}
    data = {"meta_archs": ARCHS, "total_archs": len(ARCHS), "arch2infos": infos, "evaluated_indexes": set(infos)}
    nats_bench.pickle_save(data, str(stem))
    return Path(str(stem) + ".pbz2")


def expected_accuracy(index: int, hp: str, dataset: str) -> dict[str, float]:
    splits = BENCH_DATASETS[dataset].splits
    return {
        label: mean(recorded(index, hp, dataset, s, split) for s in SEEDS[dataset]) for label, split in splits.items()
    }


@pytest.mark.parametrize("layout", ["archive", "single_file"])
@pytest.mark.parametrize("hp", ["200", "12"])
def test_lookup_returns_what_the_archive_records(layout: str, hp: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(layout)
    for index in range(STORED):
        result = lookup(ARCHS[index], path, hp=hp)
        assert (result["arch"], result["index"], result["hp"], result["benchmark"]) == (
            ARCHS[index],
            index,
            hp,
            str(path),
        )
        assert list(result["datasets"]) == list(BENCH_DATASETS)
        for dataset, record in result["datasets"].items():
            assert record["accuracy"] == pytest.approx(expected_accuracy(index, hp, dataset), abs=1e-9)
            assert record["splits"] == BENCH_DATASETS[dataset].splits
            assert record["params_M"] == pytest.approx(params_m(index, dataset))
            assert record["flops_M"] == pytest.approx(flops_m(index, dataset))
            assert record["latency_s"] == pytest.approx(mean(latency_s(dataset, s) for s in SEEDS[dataset]))
            assert record["seeds"] == list(SEEDS[dataset])
        assert json.loads(json.dumps(result)) == result


def test_split_names_follow_the_benchmark(archive: Path) -> None:
    """cifar10 (trained on train + valid) reports no valid split; cifar10-valid's test is ori-test."""
    record = lookup(RESNET, archive, ["cifar10", "cifar10-valid", "cifar100"])["datasets"]
    assert record["cifar10"]["splits"] == {"train": "train", "test": "ori-test"}
    assert record["cifar10"]["accuracy"] == pytest.approx({"train": 99.875, "test": 94.125})
    assert record["cifar10-valid"]["accuracy"] == pytest.approx({"train": 99.625, "valid": 90.125, "test": 93.125})
    assert record["cifar100"]["accuracy"] == pytest.approx({"train": 90.0, "valid": 70.0, "test": 70.5})


def test_one_open_answers_many_lookups(archive: Path) -> None:
    bench = Bench.open(archive)
    assert len(bench) == len(ARCHS)
    first = bench.lookup(ALL_SKIP, ["cifar100"])
    again = bench.lookup(ALL_SKIP, ["cifar100", "cifar100"])
    other = bench.lookup(ALL_CONV3, ["cifar100"], hp="12")
    assert first == again and list(first["datasets"]) == ["cifar100"]
    assert (first["index"], other["index"]) == (2, 1)
    assert other["datasets"]["cifar100"]["accuracy"]["valid"] == pytest.approx(70.0 - 4.0 - 3.0)


def test_importing_the_module_does_not_import_nats_bench() -> None:
    code = "import sys, gdas_cli.bench; print('nats_bench' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def error_of(call) -> str:
    with pytest.raises(GdasError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_nats_bench_says_how_to_install(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # makes `import nats_bench` raise ImportError
    assert 'pip install "gdas-cli[nas-bench]"' in error_of(lambda: Bench.open(archive))


def test_no_path_says_where_the_files_come_from() -> None:
    message = error_of(lambda: Bench.open(None))
    assert "--nas-bench" in message and "D-X-Y/NATS-Bench" in message
    assert "NATS-tss-v1_0-3ffb9-simple" in message and "NATS-tss-v1_0-3ffb9.pickle.pbz2" in message


def test_path_errors_name_the_path(tmp_path: Path, archive: Path) -> None:
    missing = tmp_path / "nowhere"
    assert f"--nas-bench {missing}: no such file" in error_of(lambda: Bench.open(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"--nas-bench {empty}: not a NATS-Bench topology folder (no meta.pickle.pbz2)" in error_of(
        lambda: Bench.open(empty)
    )
    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    pth.write_bytes(b"PK")
    assert f"--nas-bench {pth}: a NAS-Bench-201 .pth file" in error_of(lambda: Bench.open(pth))
    tar = tmp_path / "NATS-tss-v1_0-3ffb9-simple.tar"
    tar.write_bytes(b"")
    assert f"--nas-bench {tar}: unpack" in error_of(lambda: Bench.open(tar))
    meta = archive / "meta.pickle.pbz2"
    assert f"--nas-bench {meta}: pass the folder" in error_of(lambda: Bench.open(meta))


@pytest.mark.parametrize(
    "content",
    [b"not bz2 at all", bz2.compress(b"not a pickle"), bz2.compress(pickle.dumps({"meta_archs": []}))],
    ids=["raw-bytes", "bz2-garbage", "wrong-keys"],
)
def test_a_file_that_is_not_a_benchmark(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bench.pickle.pbz2"
    path.write_bytes(content)
    assert f"--nas-bench {path}: not a NATS-Bench topology benchmark (" in error_of(lambda: Bench.open(path))


def test_the_size_space_is_not_the_topology_space(tmp_path: Path) -> None:
    folder = tmp_path / "NATS-sss-like"
    folder.mkdir()
    nats_bench.pickle_save({"meta_archs": ["8:16:24:32:40"], "total_archs": 1}, str(folder / "meta.pickle"))
    assert f"--nas-bench {folder}: not a topology-space (tss) benchmark" in error_of(lambda: Bench.open(folder))


def test_unknown_arch_dataset_and_hp(archive: Path) -> None:
    bench = Bench.open(archive)
    odd = "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert f"{odd!r} is not a cell of the benchmark at {archive}" in error_of(lambda: bench.lookup(odd))
    message = error_of(lambda: bench.lookup(RESNET, ["cifar10", "imagenet"]))
    assert "--dataset imagenet: not a NAS-Bench-201 data set" in message and "ImageNet16-120" in message
    assert "hp=90: the topology benchmark records 12 and 200" in error_of(lambda: bench.lookup(RESNET, hp="90"))


def test_a_listed_cell_without_an_archive(archive: Path) -> None:
    message = error_of(lambda: lookup(NO_ARCHIVE, archive))
    assert f"--nas-bench {archive}: the archive has no file for cell 3 (000003.pickle.pbz2)" in message


def test_a_cell_the_single_file_lacks(single_file: Path) -> None:
    assert f"--nas-bench {single_file}: has no results for cell 3" in error_of(lambda: lookup(NO_ARCHIVE, single_file))


def test_results_the_archive_does_not_record(tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    nats_bench.pickle_save({"meta_archs": ARCHS[:1], "total_archs": 1}, str(folder / "meta.pickle"))
    state = cell_state(0, hps=("200",))
    state["200"]["dataset_seed"].pop("cifar100")  # no cifar100 trials for this cell
    nats_bench.pickle_save(state, str(folder / "000000.pickle"))
    bench = Bench.open(folder)
    assert f"--nas-bench {folder}: cell 0 has no hp=12 results (recorded: 200)" in error_of(
        lambda: bench.lookup(RESNET, hp="12")
    )
    assert f"--dataset cifar100: cell 0 has no cifar100 results for hp=200 in {folder}" in error_of(
        lambda: bench.lookup(RESNET, ["cifar10", "cifar100"])
    )


def test_a_corrupt_cell_archive(tmp_path: Path) -> None:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    nats_bench.pickle_save({"meta_archs": ARCHS[:1], "total_archs": 1}, str(folder / "meta.pickle"))
    (folder / "000000.pickle.pbz2").write_bytes(bz2.compress(b"truncated")[:-5])
    message = error_of(lambda: lookup(RESNET, folder))
    assert f"--nas-bench {folder}: cannot read cell 0's archive (" in message
