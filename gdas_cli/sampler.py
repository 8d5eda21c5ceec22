"""Hard Gumbel-softmax sampling with a straight-through gradient (paper Eq. 5-7).

Forward: h = one_hot(argmax(log_softmax(A) + g)); backward: d softmax((log_softmax(A) + g) / tau).
`draw` samples every row of the given alphas at once and reads the chosen indices back to the host
in ONE transfer, so a supernet that draws once per forward pays one host sync per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

MAX_REDRAWS = 100


@dataclass
class Draw:
    """`hard`: one-hot weights (value exactly 0/1) carrying the soft gradient; `index`: chosen ops on the host."""

    hard: torch.Tensor
    index: torch.Tensor


def gumbel_noise(shape: torch.Size | tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    exponential = torch.empty(shape, device=like.device, dtype=like.dtype).exponential_(generator=generator)
    return -exponential.log()


def draw(
    alphas: torch.Tensor, tau: float, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None
) -> Draw:
    """Sample one op per row of `alphas` (..., K), `sample_shape` times; re-draw if anything is non-finite."""
    log_probs = F.log_softmax(alphas, dim=-1)
    shape = torch.Size(sample_shape) + alphas.shape
    for _ in range(MAX_REDRAWS):
        logits = (log_probs + gumbel_noise(shape, alphas, generator)) / tau
        probs = F.softmax(logits, dim=-1)
        index = probs.argmax(dim=-1)
        bad = ~(torch.isfinite(logits).all() & torch.isfinite(probs).all())
        host = torch.cat([index.flatten(), bad.long().view(1)]).cpu()
        if not host[-1]:
            one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
            hard = one_hot - probs.detach() + probs
            return Draw(hard=hard, index=host[:-1].view(index.shape))
    raise FloatingPointError(f"Gumbel sampling gave non-finite values {MAX_REDRAWS} times; alphas may be NaN")


def soft_weights(alphas: torch.Tensor) -> torch.Tensor:
    """DARTS mode: softmax weights over all ops (no sampling)."""
    return F.softmax(alphas, dim=-1)


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Tau for `epoch` (0-based), linear from tau_max at the first epoch to tau_min at the last."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)
