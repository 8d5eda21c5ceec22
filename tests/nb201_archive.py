"""A small NATS-Bench topology benchmark written with nats_bench's own classes, in the real layouts.

How it is built (as AutoDL-Projects' `exps/NATS-Bench/tss-collect.py` builds the real one): for each
cell and each hp ("12": 12 epochs, "200": 200 epochs) an `ArchResults(index, arch_str)` holds, per
data set and seed, a `ResultsCount(dataset, None, train_acc1es, train_losses, params, flops,
arch_config, seed, epochs, None)` filled with `update_train_info` (per-epoch train accuracies, losses
and times), `update_eval` (`"x-valid@E"`, `"x-test@E"`, `"ori-test@E"` accuracies, losses and times for
every epoch E, on the splits the real benchmark evaluates for that data set) and `update_latency`. The
made-up accuracies rise linearly to a final value given by `recorded()`; params and FLOPs depend on
the cell and data set, latency on the seed. Then, with `nats_bench.pickle_save`: the fast-mode folder
gets `meta.pickle.pbz2` (`meta_archs` lists the arch strings, `arch2infos` None, as tss-collect writes
it) and `NNNNNN.pickle.pbz2` per stored cell holding `OrderedDict(hp -> ArchResults.state_dict())`;
cells listed past `stored` have no archive. The single-file benchmark holds `meta_archs`, `arch2infos`
(index -> the same OrderedDict) and `evaluated_indexes` in one `.pickle.pbz2`.

Needs nats_bench (the `nas-bench` extra); the importing test skips without it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from statistics import mean

import nats_bench

from gdas_cli.bench import BENCH_DATASETS

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
NO_ARCHIVE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ARCHS = [RESNET, ALL_CONV3, ALL_SKIP, NO_ARCHIVE]
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


def trial(index: int, arch: str, hp: str, dataset: str, seed: int):
    """One trained model's record, a nats_bench ResultsCount, as tss-collect.py fills it."""
    epochs = EPOCHS[hp]
    ramp = [(epoch + 1) / epochs for epoch in range(epochs)]
    train = {epoch: recorded(index, hp, dataset, seed, "train") * r for epoch, r in enumerate(ramp)}
    losses = {epoch: 2.0 - r for epoch, r in enumerate(ramp)}
    times = {epoch: 5.0 for epoch in range(epochs)}
    config = {"channel": 16, "num_cells": 5, "arch_str": arch, "class_num": CLASSES[dataset]}
    result = nats_bench.ResultsCount(
        dataset, None, train, losses, params_m(index, dataset), flops_m(index, dataset), config, seed, epochs, None
    )
    result.update_train_info(train, None, losses, times)
    evals = [split for split in FINAL[dataset] if split != "train"]
    accs = {f"{s}@{e}": recorded(index, hp, dataset, seed, s) * r for s in evals for e, r in enumerate(ramp)}
    result.update_eval(accs, {key: 1.0 for key in accs}, {key: 0.5 for key in accs})
    result.update_latency([latency_s(dataset, seed)])
    return result


def cell_state(index: int, arch: str, hps: tuple[str, ...] = ("12", "200")) -> OrderedDict:
    """What one NNNNNN.pickle.pbz2 holds: hp -> ArchResults.state_dict()."""
    per_hp = OrderedDict()
    for hp in hps:
        results = nats_bench.ArchResults(index, arch)
        for dataset, seeds in SEEDS.items():
            for seed in seeds:
                results.update(dataset, seed, trial(index, arch, hp, dataset, seed))
        per_hp[hp] = results.state_dict()
    return per_hp


def write_archive(folder: Path, archs: list[str], stored: int | None = None) -> Path:
    """A fast-mode folder laid out as NATS-tss-v1_0-3ffb9-simple/, with archives for the first `stored` cells."""
    folder.mkdir(parents=True)
    meta = {"meta_archs": archs, "total_archs": len(archs), "arch2infos": None, "evaluated_indexes": set()}
    nats_bench.pickle_save(meta, str(folder / "meta.pickle"))
    for index in range(len(archs) if stored is None else stored):
        nats_bench.pickle_save(cell_state(index, archs[index]), str(folder / f"{index:06d}.pickle"))
    return folder


def write_single_file(stem: Path, archs: list[str], stored: int | None = None) -> Path:
    """The one-file layout of NATS-tss-v1_0-3ffb9.pickle.pbz2 (read whole, fast_mode=False)."""
    infos = {index: cell_state(index, archs[index]) for index in range(len(archs) if stored is None else stored)}
    data = {"meta_archs": archs, "total_archs": len(archs), "arch2infos": infos, "evaluated_indexes": set(infos)}
    nats_bench.pickle_save(data, str(stem))
    return Path(str(stem) + ".pbz2")


def expected_accuracy(index: int, hp: str, dataset: str) -> dict[str, float]:
    splits = BENCH_DATASETS[dataset].splits
    return {
        label: mean(recorded(index, hp, dataset, s, split) for s in SEEDS[dataset]) for label, split in splits.items()
    }
