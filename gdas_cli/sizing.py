"""The sizing rule: recipes for data sets other than the paper's, computed from the data and the machine.

The paper's recipes are sized for CIFAR on a GPU: a search of 240 epochs over two 25K-image halves, a
final training of 600 epochs of a 20-cell network. On a folder of a few hundred images, or on a CPU,
they run for hours, and a short search with them moves the alphas no further than noise (README,
"Your own data"). So every data set but CIFAR-10, CIFAR-100 and ImageNet (which keep the paper's
recipes) gets its sizes from four facts: training images, classes, native image side, and the
device (CPU or GPU) with its cores. The built-in `digits` set is one case of the rule.

Search (`search_sizes`), with `half` = training images // 2 (the W and A halves):

- image side: the native side, at most 16 on a CPU and 32 on a GPU (a multiple of 8, at least 8);
- batch: half / 4 rounded down to a power of two, within 16..64 (CPU) or 16..128 (GPU);
- epochs: enough passes for each half to feed SEARCH_EXAMPLES images to its steps (30,000 on a CPU,
  3,000,000 on a GPU: half the paper's 240 x 25,000), within 10..240;
- network: C=8, N=1 on a CPU; C=16, N=2 (the paper's) on a GPU, xautodl's layout with its BN-ReLU head
  (NAS-Bench-201's space: C=8, N=1 on a CPU; the benchmark's C=16, N=5 on a GPU);
- W lr 0.05 (cosine to 1e-3), alphas Adam lr 3e-3 without weight decay (see SEARCH_WHY).

Training (`train_sizes`), with n = training images:

- image side: 32, the CIFAR network's input (its auxiliary head needs 8x8 maps at the second reduction);
  smaller images are upsampled, larger ones shrunk;
- network: C=36 with 20 cells (the paper's) on a GPU with at least 10,000 images, else C=16 with 8 cells;
- batch: n / 20 rounded down to a power of two (about 20 steps per epoch), within 16..64 (CPU) or 16..96
  (GPU, the 2019 code's CIFAR batch);
- epochs: enough to train on TRAIN_EXAMPLES images (15,000 on a CPU: the digits demo's 10 epochs of
  1,500; 30,000,000 on a GPU: the paper's 600 x 50,000), within 10..600;
- lr 0.025 and drop-path 0.2 for the paper's network, else lr 0.05 and drop-path 0.1 (the digits demo);
  cutout off (the paper's 16 px is for CIFAR's 32 px objects that fill the frame). NAS-Bench-201 cells:
  C=16 with N=2 cells per stage, or the benchmark's N=5 on a GPU from 10,000 images (lr 0.1, batches up
  to 256, at most 200 epochs: its 200E recipe), never drop-path.

DataLoader workers, for folder sets too large to hold in memory: cores - 1, at most 4.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import GdasError

PAPER_DATASETS = frozenset({"cifar10", "cifar100", "imagenet"})
SEARCH_EXAMPLES = {"cpu": 30_000, "cuda": 3_000_000}
TRAIN_EXAMPLES = {"cpu": 15_000, "cuda": 30_000_000}
BIG_TRAINING_SET = 10_000  # from here a GPU trains the paper's C=36, 20-cell network
CIFAR_SIDE = 32  # the CIFAR network's input

# The source of every value a recipe can take: what names each default in a plan.
SOURCES = ("you", "rule", "paper", "2019 code", "2020 code", "data", "ours")


@dataclass(frozen=True)
class DataFacts:
    """What the rule needs to know of a data set, found without decoding its images (`data.describe`)."""

    name: str
    train_images: int
    classes: int
    image_size: int  # the native side (a folder: the median over a sample of its images)

    def describe(self) -> str:
        return f"{self.train_images:,} training images, {self.classes} classes, {self.image_size}x{self.image_size}"


@dataclass(frozen=True)
class Machine:
    """Where a run computes: `cuda` or `cpu`, and the CPU cores this process may use."""

    device: str
    cores: int

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    def describe(self) -> str:
        return f"{'GPU' if self.gpu else 'CPU'}, {self.cores} core{'s' if self.cores != 1 else ''}"


def this_machine(device: str = "auto") -> Machine:
    """The machine a run with `--device device` computes on (auto: cuda when torch sees a GPU)."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Machine(device, available_cores())


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def uses_rule(dataset: str) -> bool:
    """Whether a data set's recipes come from this rule: all but the paper's CIFAR-10, CIFAR-100 and ImageNet."""
    return dataset.split(":")[0] not in PAPER_DATASETS


def _power_of_two(value: float, low: int, high: int) -> int:
    """`value` rounded down to a power of two, then clipped to [low, high]."""
    power = 2 ** int(math.log2(value)) if value >= 1 else 1
    return max(low, min(high, power))


def _side(native: int, cap: int) -> int:
    """The native side, at most `cap`, rounded down to a multiple of 8, at least 8."""
    return max(8, min(native, cap) // 8 * 8)


def _epochs(examples: int, images: int, most: int) -> int:
    return max(10, min(most, math.ceil(examples / max(images, 1))))


def workers(machine: Machine) -> int:
    """DataLoader workers for streamed folder sets: one core stays with the training process."""
    return max(0, min(4, machine.cores - 1))


def check_workers(given: int | None, machine: Machine) -> None:
    """More DataLoader workers than cores only make them fight over the cores (PyTorch warns): refused."""
    if given is not None and given > machine.cores:
        raise GdasError(
            f"--workers: {given} is more than the {machine.cores} cores this process may use "
            f"(default here: {workers(machine)})"
        )


@dataclass(frozen=True)
class SearchNet:
    """A space's supernet under the rule: (C, cells per stage) on a CPU and on a GPU, and other settings."""

    cpu: tuple[int, int]
    cuda: tuple[int, int]
    settings: tuple[tuple[str, Any], ...] = ()


SEARCH_NETWORKS: dict[str, SearchNet] = {
    # xautodl's BN-ReLU head: with the paper's, a short search stays near chance (README "Your own data")
    "darts": SearchNet(cpu=(8, 1), cuda=(16, 2), settings=(("layout", "xautodl"),)),
    "nas-bench-201": SearchNet(cpu=(8, 1), cuda=(16, 5)),  # on a GPU, the benchmark's C=16, N=5
}


def search_sizes(facts: DataFacts, machine: Machine, space: str = "darts") -> dict[str, Any]:
    """The CNN search settings the rule gives (module docstring), keyed like `search.config.SearchConfig`."""
    half = max(facts.train_images // 2, 1)
    net = SEARCH_NETWORKS[space]
    channels, cells = net.cuda if machine.gpu else net.cpu
    return {
        "image_size": _side(facts.image_size, 32 if machine.gpu else 16),
        "batch_size": _power_of_two(half / 4, 16, 128 if machine.gpu else 64),
        "epochs": _epochs(SEARCH_EXAMPLES[machine.device], half, 240),
        "channels": channels,
        "cells_per_stage": cells,
        "lr": 0.05,
        "arch_lr": 3e-3,
        "arch_weight_decay": 0.0,
        "workers": workers(machine),
        **dict(net.settings),
    }


@dataclass(frozen=True)
class TrainNet:
    """A space's final network under the rule: the small one and the paper's (C, layers, lr, drop-path), the
    largest GPU batch and the most epochs its recipe trains."""

    small: tuple[int, int, float, float]
    paper: tuple[int, int, float, float]
    gpu_batch: int
    epochs: int


TRAIN_NETWORKS: dict[str, TrainNet] = {
    # DARTS cells: the old digits demo's network, or the paper's C=36, 20 cells (2019 code: batch 96, 600 epochs)
    "darts": TrainNet(small=(16, 8, 0.05, 0.1), paper=(36, 20, 0.025, 0.2), gpu_batch=96, epochs=600),
    # NAS-Bench-201: N=2 cells per stage, or the benchmark's C=16, N=5 (200E.config: lr 0.1, batch 256, no
    # drop-path, 200 epochs)
    "nas-bench-201": TrainNet(small=(16, 2, 0.05, 0.0), paper=(16, 5, 0.1, 0.0), gpu_batch=256, epochs=200),
}


def train_sizes(facts: DataFacts, machine: Machine, space: str = "darts") -> dict[str, Any]:
    """The final-training settings the rule gives (module docstring), keyed like `training.image.TrainConfig`."""
    n = facts.train_images
    net = TRAIN_NETWORKS[space]
    C, layers, lr, drop_path = net.paper if machine.gpu and n >= BIG_TRAINING_SET else net.small
    return {
        "image_size": CIFAR_SIDE,
        "C": C,
        "layers": layers,
        "batch_size": _power_of_two(n / 20, 16, net.gpu_batch if machine.gpu else 64),
        "epochs": _epochs(TRAIN_EXAMPLES[machine.device], n, net.epochs),
        "lr": lr,
        "drop_path": drop_path,
        "cutout": 0,
        "workers": workers(machine),
    }


def plan_sources(
    keys: list[str], recipe: dict[str, str], rule: dict[str, Any], given: dict[str, Any]
) -> dict[str, str]:
    """Each value's source: `you` for an option given, `rule` for what the rule set, else the recipe's own."""
    sources = {}
    for key in keys:
        if given.get(key) is not None:
            sources[key] = "you"
        elif key in rule:
            sources[key] = "rule"
        else:
            sources[key] = recipe.get(key, "ours")
    return sources
