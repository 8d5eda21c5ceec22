"""Normalisation statistics: each CIFAR set is normalised with its own per-channel mean and std."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gdas_cli.data import load_images

# The GDAS code's values (0..255 units over 255): xautodl 1.0.0 datasets/get_dataset_with_transform.py.
EXPECTED = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}


class FakeCifar:
    """Stands in for torchvision's CIFAR classes: a few random images in their layout (N, 32, 32, 3)."""

    def __init__(self, root: str, train: bool, download: bool) -> None:
        rng = np.random.RandomState(0 if train else 1)
        self.data = rng.randint(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
        self.targets = [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_cifar_set_has_its_own_mean_and_std(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from torchvision import datasets

    monkeypatch.setattr(datasets, "CIFAR10", FakeCifar)
    monkeypatch.setattr(datasets, "CIFAR100", FakeCifar)
    data = load_images(name, tmp_path)
    mean, std = EXPECTED[name]
    assert data.mean == pytest.approx([m / 255 for m in mean], abs=1e-12)
    assert data.std == pytest.approx([s / 255 for s in std], abs=1e-12)
    assert data.num_classes == (100 if name == "cifar100" else 10)


def test_the_constants_to_four_places() -> None:
    """The familiar decimal forms, and CIFAR-100's really differ from CIFAR-10's."""
    from gdas_cli.data import CIFAR100_MEAN, CIFAR100_STD, CIFAR_MEAN, CIFAR_STD

    assert [round(v, 4) for v in CIFAR_MEAN] == [0.4914, 0.4824, 0.4467]
    assert [round(v, 4) for v in CIFAR_STD] == [0.2471, 0.2435, 0.2616]
    assert [round(v, 4) for v in CIFAR100_MEAN] == [0.5071, 0.4867, 0.4408]
    assert [round(v, 4) for v in CIFAR100_STD] == [0.2675, 0.2565, 0.2761]
    assert torch.tensor(CIFAR100_MEAN).sub(torch.tensor(CIFAR_MEAN)).abs().max() > 0.01
