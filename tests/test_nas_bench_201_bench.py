"""`gdas_cli.bench` against a small benchmark written by nats_bench's own classes, in the real layout.

How the benchmark is built: tests/nb201_archive.py (as AutoDL-Projects' `exps/NATS-Bench/tss-collect.py`
builds the real one). Here it lists four cells; the fourth is listed in the meta file but has no archive.
Both layouts are opened by `gdas_cli.bench`, which calls `nats_bench.create(path, "tss",
fast_mode=..., verbose=False)`; the looked-up numbers must equal the means over seeds of what was put in.

Skipped when nats_bench (the `nas-bench` extra) is not installed.
"""

from __future__ import annotations

import bz2
import json
import pickle
import subprocess
import sys
from pathlib import Path
from statistics import mean

import pytest

from gdas_cli.bench import BENCH_DATASETS, Bench, lookup
from gdas_cli.errors import GdasError

nats_bench = pytest.importorskip("nats_bench")
from nb201_archive import (  # noqa: E402  (needs nats_bench)
    ARCHS,
    SEEDS,
    cell_state,
    expected_accuracy,
    flops_m,
    latency_s,
    params_m,
    write_archive,
    write_single_file,
)

RESNET, ALL_CONV3, ALL_SKIP, NO_ARCHIVE = ARCHS
STORED = 3  # cells 0..2 have an archive; cell 3 is only listed in the meta file


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("bench") / "NATS-tss-test-simple", ARCHS, STORED)


@pytest.fixture(scope="module")
def single_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_single_file(tmp_path_factory.mktemp("bench") / "NATS-tss-test.pickle", ARCHS, STORED)


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
    state = cell_state(0, ARCHS[0], hps=("200",))
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
