"""One GDAS search iteration (paper Alg. 1): a W step on a train batch, then an A step on a valid batch.

Kept apart from the engine task so the benchmark times exactly the code a search runs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .supernet import SearchNetwork


@contextlib.contextmanager
def frozen(parameters: Iterable[nn.Parameter], enabled: bool = True) -> Iterator[None]:
    """Parameters that one step does not update stop asking for gradients, so backward skips them
    (the A step then computes no weight gradients, the costlier half of a conv's backward)."""
    params = [p for p in parameters if p.requires_grad] if enabled else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], rt: Any) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = batch
    with rt.autocast():
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
    return loss, (logits.detach().argmax(dim=1) == labels).sum()


def search_step(
    model: nn.Module, net: SearchNetwork, weight_optimizer: torch.optim.Optimizer,
    arch_optimizer: torch.optim.Optimizer, train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor], rt: Any, grad_clip: float,
) -> dict[str, torch.Tensor]:
    """W step then A step; returns metric SUMS over the train batch as device tensors (no host sync).

    `model` is what to call (maybe DDP-wrapped), `net` the supernet inside it; `rt` an engine Runtime.
    Under DDP nothing is frozen: DDP expects the same parameters to need gradients in every step.
    """
    freeze = not rt.distributed
    weights = list(net.weights())
    n = train[1].numel()
    weight_optimizer.zero_grad(set_to_none=True)
    with frozen(net.alphas(), freeze):
        loss, correct = _loss(model, train, rt)
        rt.backward_step(loss, weight_optimizer, weights, grad_clip)
    arch_optimizer.zero_grad(set_to_none=True)
    with frozen(weights, freeze):
        arch_loss, arch_correct = _loss(model, valid, rt)
        rt.backward_step(arch_loss, arch_optimizer)
    n_valid = valid[1].numel()
    # A-step sums are scaled to the train count so the engine's sum(key) / sum(n) is their mean;
    # accuracies are percentages, as in training records.
    return {
        "loss": loss.detach().float() * n, "top1": correct.float() * 100.0,
        "arch_loss": arch_loss.detach().float() * n, "arch_top1": arch_correct.float() * (100.0 * n / n_valid),
        "n": loss.new_full((), float(n), dtype=torch.float32),  # a fill, not a blocking host-to-device copy
    }
