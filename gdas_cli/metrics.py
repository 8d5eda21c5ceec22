"""Counting as the paper counts: parameters without the auxiliary head, mult-adds of conv and linear layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """All parameters except those of an auxiliary head (`aux_head`), which the paper excludes."""
    aux = getattr(model, "aux_head", None)
    aux_ids = {id(p) for p in aux.parameters()} if aux is not None else set()
    return sum(p.numel() for p in model.parameters() if id(p) not in aux_ids)


def count_mult_adds(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-adds of one eval-mode forward on a zero input of `input_size` (batch included).

    torch's flop counter counts matmuls and convolutions as 2 FLOPs per multiply-add and ignores
    pools, norms and activations, which is exactly the paper's conv+linear count.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(input_size, dtype=param.dtype, device=param.device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Number of examples whose target is among the top-k logits, for each k (tensors: no host sync)."""
    maxk = min(max(ks), logits.size(1))
    top = logits.topk(maxk, dim=1).indices
    hits = top.eq(target.unsqueeze(1))
    return [hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]
