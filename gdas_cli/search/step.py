"""One GDAS search iteration (paper Alg. 1): a W step on a train batch, then an A step on a valid batch.

Kept apart from the engine task so the benchmark times exactly the code a search runs.

The W step clips the gradient norm of the weights (the 2019 code). With `grad_clip_with_alphas` it
clips as xautodl's GDAS.py does, `clip_grad_norm_(network.parameters(), 5)`: the norm also counts
the alphas' gradients, which there hold the W step's own plus what the previous A step left
(xautodl zeroes them only before its A step). The clipped alpha gradients are then dropped, so the
alphas still move only in the A step; what changes is how far the weights' gradient is scaled down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .nb201_supernet import NB201SearchNetwork
from .supernet import SearchNetwork

Supernet = SearchNetwork | NB201SearchNetwork  # what a search step trains: any space's supernet

# The arch optimizer's per-alpha state key that keeps the last A step's gradient for the next W
# step's clip (there, not in .grad, so checkpoints hold it and a resumed run clips the same).
LAST_ARCH_GRAD = "last_arch_grad"


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
        # at least fp32 (fp16/bf16 logits under autocast), float64 kept (the equivalence tests)
        loss = F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)
    return loss, (logits.detach().argmax(dim=1) == labels).sum()


def _weight_step_clipping_alphas(
    loss: torch.Tensor,
    net: Supernet,
    weight_optimizer: torch.optim.Optimizer,
    arch_optimizer: torch.optim.Optimizer,
    rt: Any,
    grad_clip: float,
) -> None:
    """Backward, clip weights and alphas together (with the last A step's alpha gradients added),
    SGD step, then drop every gradient. The engine's backward_step, with both optimizers unscaled."""
    weights, alphas = list(net.weights()), net.alphas()
    if rt.scaler is not None:
        rt.scaler.scale(loss).backward()
        rt.scaler.unscale_(weight_optimizer)
        rt.scaler.unscale_(arch_optimizer)
    else:
        loss.backward()
    for alpha in alphas:
        # consumed here, so an A step the fp16 scaler skips leaves nothing stale behind
        left = arch_optimizer.state.get(alpha, {}).pop(LAST_ARCH_GRAD, None)
        if left is not None:
            alpha.grad = left.clone() if alpha.grad is None else left + alpha.grad
    nn.utils.clip_grad_norm_(weights + alphas, grad_clip)
    if rt.scaler is not None:
        rt.scaler.step(weight_optimizer)
        rt.scaler.update()
    else:
        weight_optimizer.step()
    weight_optimizer.zero_grad(set_to_none=True)
    arch_optimizer.zero_grad(set_to_none=True)


def _keep_arch_grads(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Step post-hook of the arch optimizer: keep each alpha's (unscaled) gradient for the next clip."""
    for group in optimizer.param_groups:
        for alpha in group["params"]:
            if alpha.grad is not None:
                optimizer.state[alpha][LAST_ARCH_GRAD] = alpha.grad.detach().clone()


def search_step(
    model: nn.Module,
    net: Supernet,
    weight_optimizer: torch.optim.Optimizer,
    arch_optimizer: torch.optim.Optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    rt: Any,
    grad_clip: float,
    *,
    grad_clip_with_alphas: bool = False,
) -> dict[str, torch.Tensor]:
    """W step then A step; returns metric SUMS over the train batch as device tensors (no host sync).

    `model` is what to call (maybe DDP-wrapped), `net` the supernet inside it; `rt` an engine Runtime.
    `grad_clip_with_alphas`: clip as xautodl does (module docstring); matters only with `grad_clip` > 0.
    Under DDP nothing is frozen: DDP expects the same parameters to need gradients in every step.
    """
    freeze = not rt.distributed
    with_alphas = grad_clip_with_alphas and grad_clip > 0
    weights = list(net.weights())
    n = train[1].numel()
    weight_optimizer.zero_grad(set_to_none=True)
    with frozen(net.alphas(), freeze and not with_alphas):
        loss, correct = _loss(model, train, rt)
        if with_alphas:
            _weight_step_clipping_alphas(loss, net, weight_optimizer, arch_optimizer, rt, grad_clip)
        else:
            rt.backward_step(loss, weight_optimizer, weights, grad_clip)
    arch_optimizer.zero_grad(set_to_none=True)
    keeper = arch_optimizer.register_step_post_hook(_keep_arch_grads) if with_alphas else None
    try:
        with frozen(weights, freeze):
            arch_loss, arch_correct = _loss(model, valid, rt)
            rt.backward_step(arch_loss, arch_optimizer)
    finally:
        if keeper is not None:
            keeper.remove()
    n_valid = valid[1].numel()
    # A-step sums are scaled to the train count so the engine's sum(key) / sum(n) is their mean;
    # accuracies are percentages, as in training records.
    return {
        "loss": loss.detach().float() * n,
        "top1": correct.float() * 100.0,
        "arch_loss": arch_loss.detach().float() * n,
        "arch_top1": arch_correct.float() * (100.0 * n / n_valid),
        "n": loss.new_full((), float(n), dtype=torch.float32),  # a fill, not a blocking host-to-device copy
    }
