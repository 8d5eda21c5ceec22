"""The auxiliary classifier attached to the second reduction cell during final training."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn


class AuxiliaryHead(nn.Sequential):
    """ReLU, 5x5 average pool, 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, [BN], ReLU, linear.

    CIFAR (8x8 input, pool stride 3) keeps the BN after the 2x2 conv; ImageNet (7x7, stride 2)
    omits it, as the 2019 code does.
    """

    def __init__(self, C: int, num_classes: int, pool_stride: int, bn_after_conv: bool) -> None:
        layers: list[nn.Module] = [
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if bn_after_conv:
            layers.append(nn.BatchNorm2d(768))
        layers += [nn.ReLU(inplace=False), nn.Flatten(), nn.Linear(768, num_classes)]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh final linear layer for `num_classes`, on the same device and dtype; the rest is kept."""
        old = cast(nn.Linear, self[-1])  # built last in __init__
        self[-1] = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
