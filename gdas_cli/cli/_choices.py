"""The options with fixed choices, as str enums so `--help` lists them and a typo is refused by name.

The values mirror registries further down (engine.DEVICES, sampler.SAMPLING_MODES, ...) that import
torch; they are written out here so `--help` stays torch-free, and tests/test_cli.py checks that
each enum equals its registry.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    amp = "amp"


class Sampling(str, Enum):
    cell = "cell"
    batch = "batch"
    sample = "sample"
    sample_cell = "sample_cell"
    darts = "darts"
    gdas_all_ops = "gdas_all_ops"


class Layout(str, Enum):
    paper = "paper"
    xautodl = "xautodl"


class Rule(str, Enum):
    paper = "paper"
    pairs = "pairs"
    nb201 = "nb201"
    rnn = "rnn"


class SpaceName(str, Enum):
    """The search spaces `gdas search cnn` searches (spaces.SPACES less the recurrent one)."""

    darts = "darts"
    nas_bench_201 = "nas-bench-201"


class Split(str, Enum):
    train = "train"
    valid = "valid"
    test = "test"


class Checkpoint(str, Enum):
    last = "last"
    best = "best"


class ExportFormat(str, Enum):
    onnx = "onnx"
    pt2 = "pt2"


class Schedule(str, Enum):
    cosine = "cosine"
    exponential = "exponential"


class BenchHp(str, Enum):
    """The NAS-Bench-201 topology benchmark's two training schedules, by their epochs (bench.TOPOLOGY_HPS)."""

    epochs_200 = "200"
    epochs_12 = "12"


class BenchData(str, Enum):
    """The benchmark's four data sets (bench.BENCH_DATASETS)."""

    cifar10_valid = "cifar10-valid"
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    imagenet16_120 = "ImageNet16-120"


class NetFamily(str, Enum):
    """The network family of `gdas train folder`."""

    cifar = "cifar"
    imagenet = "imagenet"


class Kind(str, Enum):
    """A genotype's kind: convolutional cells or a recurrent cell."""

    cnn = "cnn"
    rnn = "rnn"


class ShowFormat(str, Enum):
    """How `genotypes show` prints a genotype."""

    text = "text"
    arch_str = "arch-str"
    json = "json"


class Net(str, Enum):
    """What `genotypes info` counts: an image network (cnn genotypes) or a language model (rnn genotypes)."""

    cifar10 = "cifar10"
    cifar100 = "cifar100"
    imagenet = "imagenet"
    imagenet16_120 = "imagenet16-120"
    ptb = "ptb"
    wt2 = "wt2"


def plain(value: Any) -> Any:
    """An enum member's string value (configs and JSON hold strings); anything else unchanged."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
