"""The range of every numeric option, in one table, checked while the command line is parsed.

Each numeric option of every command declares one of these ranges as its Typer callback
(`typer.Option(callback=EPOCHS.check)`), so a value out of range is refused before anything is read,
built or written: one line naming the option, exit code 2. The configs check their cross-option rules
(`--tau-min` <= `--tau-max`, `--channels` a multiple of 8 with `--frc`, ...) and the saved config of a
resumed run again. `tests/test_option_ranges.py` walks every command and fails on a numeric option
without a range.

Torch-free, like the rest of what `--help` imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .genotype import MAX_NETWORK_CELLS, MAX_NETWORK_CHANNELS, MAX_NODES

FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max: the optimizers hold float32
MAX_SEED = 2**32 - 1  # numpy takes seeds in [0, 2**32 - 1] (torch's range is wider)
MAX_EPOCHS = 100_000  # 33x the longest published recipe (WT2: 3000 epochs); more is a typo
MAX_BATCH = 65_536  # the largest published ImageNet batches (64K); anything more only fails to allocate
MAX_COUNT = 2**31 - 1  # counts of steps, batches and images: a 32-bit int, like the samplers' indices
MAX_WORKERS = 1024  # DataLoader processes; a run also refuses more than the cores it may use
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024  # the networks reduce by 8; larger images only fail to allocate
MAX_SEARCH_CHANNELS = 1024  # far above any searched supernet (paper: 16); larger ones only fail to allocate
MAX_CELLS_PER_STAGE = 64  # likewise (paper: N=2; xautodl: N=5)
MAX_EMSIZE = 16384  # far above the paper's 850; larger ones only fail to allocate
MAX_SEEDS = 100  # the paper ran 4; each seed is a whole search and a short training


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval of an option's values; floats must also be finite.

    `high=FLOAT32_MAX` is "no cap but float32's". `why` says where a cap that is not obvious comes from.
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """The interval in words: "in [1, 100000]", "> 0 and at most float32's 3.4e+38"."""
        if self.high == FLOAT32_MAX:
            return f"{'>' if self.low_open else '>='} {_number(self.low)} and at most float32's {FLOAT32_MAX:.2g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"

    def problem(self, value: float) -> str | None:
        """What is wrong with `value` ("must be in [0, 4294967295] (numpy's seeds), got -1"), or None."""
        why = f" ({self.why})" if self.why else ""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number {self.describe()}{why}, got {value}"
        if value not in self:
            return f"must be {self.describe()}{why}, got {value}"
        return None

    def check(self, value: Any) -> Any:
        """The Typer callback: `value` unchanged (None: not given), or a BadParameter naming the problem."""
        if value is None:
            return value
        problem = self.problem(value)
        if problem is not None:
            import typer

            raise typer.BadParameter(problem)
        return value


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


# ------------------------------------------------------------------------------------------ the table
# counts
SEED = Range(0, MAX_SEED, why="numpy's seed range")
SEEDS = Range(1, MAX_SEEDS, why="each seed is a whole search")
EPOCHS = Range(1, MAX_EPOCHS)  # also an epoch of a run, and every N epochs
EPOCH_WINDOW = Range(0, MAX_EPOCHS)  # --nonmono
BATCH = Range(1, MAX_BATCH)
SEARCH_BATCH = Range(2, MAX_BATCH, why="batch norm needs 2 examples")
COUNT = Range(0, MAX_COUNT)  # steps, batches, images, edges; 0 is "off" or "all" where it has a meaning
WORKERS = Range(0, MAX_WORKERS)
BPTT = Range(2, MAX_COUNT)
# sizes
IMAGE_SIZE = Range(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
CUTOUT = Range(0, MAX_IMAGE_SIZE)
SEARCH_CHANNELS = Range(2, MAX_SEARCH_CHANNELS)
CELLS_PER_STAGE = Range(1, MAX_CELLS_PER_STAGE)
CHANNELS = Range(2, MAX_NETWORK_CHANNELS)
LAYERS = Range(1, MAX_NETWORK_CELLS)
SELECT_LAYERS = Range(3, MAX_NETWORK_CELLS)
EMSIZE = Range(1, MAX_EMSIZE)
NODES = Range(1, MAX_NODES)
# rates and weights: finite, in float32
POSITIVE = Range(0.0, FLOAT32_MAX, low_open=True)
NON_NEGATIVE = Range(0.0, FLOAT32_MAX)
PROBABILITY = Range(0.0, 1.0, high_open=True)  # momentum, Adam betas, drop-path, label smoothing
DECAY_FACTOR = Range(0.0, 1.0, low_open=True)  # --lr-gamma
