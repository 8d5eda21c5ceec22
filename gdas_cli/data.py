"""Image data for search and training: CIFAR-10/100, ImageNet, `folder:PATH` and the built-in `digits` set.

Two ways to feed the engine, both deterministic in (seed, epoch, index) so a resumed run and a DDP
run see exactly the batches a one-process uninterrupted run sees:

- `TensorBatches`: sets that fit in memory (CIFAR, digits) live on the training device as uint8;
  random crop, flip and cutout are tensor ops on the whole batch, driven by a counter-based hash of
  (seed, epoch, index) instead of an RNG, so the loader is never the bottleneck and needs no state.
- `LoaderBatches`: image folders too large to hold in memory (ImageNet, a big `folder:PATH`) go
  through a DataLoader (workers, pinned memory, non_blocking copies); each example's torchvision
  transform runs under a torch RNG seeded from (seed, epoch, index).

A `folder:PATH` set (PATH/train/<class>/*, and PATH/val/ or PATH/test/ with the same class folders
for training and evaluation; a search needs train/ alone) is resized to one square side and, when
it fits in FOLDER_MEMORY_BYTES at that side, held in memory like CIFAR; its mean and std are
computed from its training images. `describe` reports what the sizing rule needs (image count,
classes, native side) without decoding the images.

The epoch order is a seeded permutation; with K ranks, rank r takes every K-th example, so K ranks
with batch B/K together see the one-process batch B.
"""

from __future__ import annotations

import importlib.util
import math
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import GdasEnvironmentError, GdasError, read_failure, reworded
from .progress import track
from .sizing import DataFacts

# Per-channel mean and std of each CIFAR training set, in 0..255 units over 255, as the GDAS code
# normalises (xautodl 1.0.0 datasets/get_dataset_with_transform.py). CIFAR_* are CIFAR-10's.
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)
CIFAR_STATS = {10: (CIFAR_MEAN, CIFAR_STD), 100: (CIFAR100_MEAN, CIFAR100_STD)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS_TEST_SIZE = 297  # fixed split of sklearn's 1797 digits: 1500 train, 297 test
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class Augment:
    """Training augmentation of an in-memory set: pad-and-crop, horizontal flip, cutout (0: off)."""

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0


@dataclass
class TensorImages:
    """Images as one uint8 tensor (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    def subset(self, indices: Sequence[int] | torch.Tensor) -> TensorImages:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TensorImages(self.images[idx], self.labels[idx])


@dataclass
class ImageData:
    """A dataset ready to train on: its splits, classes, image size and the network family it suits.

    `train`/`test` are TensorImages (fed by TensorBatches) or indexable datasets of (PIL image,
    label) with `train_transform`/`test_transform` (fed by LoaderBatches).
    """

    name: str
    num_classes: int
    image_size: int
    net: str  # "cifar" or "imagenet": which final network fits this input size
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: Any
    test: Any
    augment: Augment | None = None
    train_transform: Callable[[Augment], Callable] | None = None  # streamed sets: the augmentation's transform
    test_transform: Callable | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorImages)


# ------------------------------------------------------------------------------------------ datasets

DIGITS_SIZE = 32  # the built-in digits set: sklearn's 8x8 digits upsampled to CIFAR's side
FOLDER_SIZE = 32  # a folder set's side when none is asked for: the CIFAR network's input
FOLDER_MEMORY_BYTES = 1 << 30  # folder sets up to 1 GiB of uint8 pixels at their side are held in memory
STATS_SAMPLE = 2000  # streamed folder sets: mean and std from this many training images, evenly spaced
SIZE_SAMPLE = 64  # `describe` reads the size of this many images, evenly spaced, from their headers
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

Stats = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class _Request:
    """What `load_images` was asked for: where, which network family, which side, whose statistics."""

    data_dir: Path
    download: bool = False
    net: str | None = None
    image_size: int | None = None  # None: the set's own side
    stats: Stats | None = None  # None: the set's own (folders: computed from the training images)
    test: bool = True  # False: only the training split is needed (a search)
    train: bool = True  # False: only the test split is needed (evaluating weights with their own statistics)


def _crop_padding(side: int) -> int:
    """The CIFAR recipe's 4-pixel padding at 32x32, scaled to the side."""
    return max(1, side // 8)


def _channel_stats(images: torch.Tensor) -> Stats:
    """Per-channel mean and (unbiased) std of uint8 images (N, C, H, W) scaled to [0, 1], in chunks.

    A channel that never varies gets std 1/255 (one grey level) instead of 0, so normalising never divides by 0.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for chunk in images.split(4096):
        scaled = chunk.to(torch.float64) / 255
        total += scaled.sum(dim=(0, 2, 3))
        squares += scaled.square().sum(dim=(0, 2, 3))
    count = images.numel() // images.shape[1]
    mean = total / count
    var = (squares - count * mean.square()) / max(count - 1, 1)
    return tuple(mean.tolist()), tuple(var.clamp_min(0).sqrt().clamp_min(1 / 255).tolist())


def _resized(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 images at side x side (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == side and images.shape[-2] == side:
        return images
    scaled = torch.nn.functional.interpolate(
        images.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True
    )
    return scaled.round().clamp(0, 255).to(torch.uint8)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits as (1797, 8, 8) pixels 0..16 and labels.

    The CSV is read straight from the installed package when it is where sklearn keeps it, which
    saves the second it takes to import sklearn (it matters in every DDP process and test).
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise GdasError("digits: the demo set needs scikit-learn; pip install gdas-cli[demo]")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _load_digits(request: _Request) -> ImageData:
    """sklearn's 1797 real 8x8 handwritten digits, upsampled (to 32x32 unless asked otherwise) and repeated to
    RGB, split 1500/297 with a fixed seed; mean and std from the training images."""
    raw, target = _digits_arrays()
    side = request.image_size or DIGITS_SIZE
    pixels = torch.tensor(raw, dtype=torch.float32).unsqueeze(1) / 16.0
    pixels = torch.nn.functional.interpolate(pixels, size=(side, side), mode="bilinear", align_corners=False)
    images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = torch.tensor(target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(labels)))
    test_idx, train_idx = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    train, test = TensorImages(images[train_idx], labels[train_idx]), TensorImages(images[test_idx], labels[test_idx])
    mean, std = request.stats or _channel_stats(train.images)
    classes = [str(digit) for digit in range(10)]
    augment = Augment(_crop_padding(side), False, 0)  # digits are not mirror-symmetric: crop only
    return ImageData("digits", 10, side, "cifar", mean, std, train, test, augment=augment, extra={"classes": classes})


def _load_cifar(classes: int) -> Callable[[_Request], ImageData]:
    def load(request: _Request) -> ImageData:
        from torchvision import datasets

        cls = datasets.CIFAR10 if classes == 10 else datasets.CIFAR100
        folder = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
        name, data_dir = f"cifar{classes}", request.data_dir
        side = request.image_size or 32
        splits = []
        for train in (True, False):
            try:
                split = cls(root=str(data_dir), train=train, download=request.download)
            except RuntimeError:
                raise GdasError(
                    f"--data-dir {data_dir}: CIFAR-{classes} not found or corrupted (expected {data_dir / folder}/ "
                    f"from the python-version archive); pass --download or put the files there"
                ) from None
            except OSError as err:  # the network or the disk, not the input
                raise GdasEnvironmentError(
                    f"--download: could not fetch CIFAR-{classes} into {data_dir} ({err})"
                ) from None
            images = torch.from_numpy(np.ascontiguousarray(split.data)).permute(0, 3, 1, 2).contiguous()
            splits.append(TensorImages(_resized(images, side), torch.tensor(split.targets, dtype=torch.long)))
        mean, std = request.stats or CIFAR_STATS[classes]
        classes_of = getattr(split, "classes", None)  # torchvision's class names, where the set has them
        names = {"classes": list(classes_of)} if classes_of else {}
        augment = Augment(_crop_padding(side), True, 16)
        return ImageData(name, classes, side, "cifar", mean, std, splits[0], splits[1], augment=augment, extra=names)

    return load


def read_image(path: str) -> Any:
    """An RGB PIL image; a file PIL cannot decode is one GdasError naming it."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:  # PIL signals truncated or unknown files these ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise read_failure(err, path, f"{path}: not a readable image ({first})") from None


def folder_layout(root: Path) -> str:
    """The layout a folder set must have, for error messages."""
    return (
        f"expected {root}/train/<class>/<image> (a folder per class; a search needs only train/) and, to train "
        "or evaluate, val/ or test/ beside train/ with the same class folders"
    )


def _image_folder(path: Path, root: Path, what: str) -> Any:
    from torchvision import datasets

    if not path.is_dir():
        raise GdasError(f"{path}: missing {what} folder; {folder_layout(root)}")
    try:
        return datasets.ImageFolder(str(path), loader=read_image)
    except OSError as err:
        problem = f"{path}: no images found for {what} ({str(err).splitlines()[0]}); {folder_layout(root)}"
        raise read_failure(err, path, problem) from None


def _check_same_classes(train: list[str], test: list[str], train_path: Path, test_path: Path, root: Path) -> None:
    if train == test:
        return
    missing = ", ".join(repr(c) for c in train if c not in test)
    extra = ", ".join(repr(c) for c in test if c not in train)
    problem = "; ".join(p for p in (f"no {missing}" if missing else "", f"extra {extra}" if extra else "") if p)
    raise GdasError(f"{test_path}: class folders differ from {train_path} ({problem}); {folder_layout(root)}")


class _EmptyFolder(list):
    """A training split that was not loaded: its class names only (what ImageFolder would have found)."""

    def __init__(self, classes: list[str]) -> None:
        super().__init__()
        self.classes = classes
        self.samples: list[tuple[str, int]] = []
        self.targets: list[int] = []


def _decode(samples: Sequence[tuple[str, int]], side: int, description: str) -> TensorImages:
    """Images (path, class) resized to side x side, as one uint8 tensor."""
    from PIL import Image

    images = torch.empty((len(samples), 3, side, side), dtype=torch.uint8)
    for i, (path, _) in enumerate(track(samples, description, total=len(samples))):
        image = read_image(path).resize((side, side), Image.Resampling.BILINEAR)
        images[i] = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return TensorImages(images, torch.tensor([label for _, label in samples], dtype=torch.long))


def _sample_stats(samples: Sequence[tuple[str, int]], side: int) -> Stats:
    """Mean and std of up to STATS_SAMPLE training images, evenly spaced (a set too large to hold)."""
    step = max(1, len(samples) // STATS_SAMPLE)
    return _channel_stats(_decode(list(samples)[::step][:STATS_SAMPLE], side, "statistics").images)


def _streamed_transforms(net: str, side: int, stats: Stats) -> tuple[Callable[[Augment], Callable], Callable]:
    """The training transform for an augmentation, and the test transform, of a streamed folder set."""
    from torchvision import transforms as T

    normalize = [T.ToTensor(), T.Normalize(*stats)]

    def train(augment: Augment) -> Callable:
        flip = [T.RandomHorizontalFlip()] if augment.flip else []
        if net == "imagenet":
            jitter = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)
            steps = [T.RandomResizedCrop(side), *flip, jitter, *normalize]
        else:
            crop = [T.RandomCrop(side, padding=augment.crop_padding)] if augment.crop_padding else []
            steps = [T.Resize((side, side)), *crop, *flip, *normalize]
        return T.Compose([*steps, Cutout(augment.cutout)] if augment.cutout > 0 else steps)

    if net == "imagenet":
        test = T.Compose([T.Resize(round(side / 0.875)), T.CenterCrop(side), *normalize])
    else:
        test = T.Compose([T.Resize((side, side)), *normalize])
    return train, test


def _folder_data(name: str, root: Path, test_dirs: tuple[str, ...], request: _Request, net: str) -> ImageData:
    if not root.is_dir():
        raise GdasError(f"{root}: no such folder; {folder_layout(root)}")
    train_path = root / "train"
    test_path = next((root / d for d in test_dirs if (root / d).is_dir()), root / test_dirs[0])
    test = _image_folder(test_path, root, f"{name} test") if request.test else None
    if request.train or test is None:
        train = _image_folder(train_path, root, f"{name} training")
        if test is not None:
            _check_same_classes(train.classes, test.classes, train_path, test_path, root)
    else:  # weights evaluated with the statistics they were trained with: the test split alone will do
        train = _EmptyFolder(test.classes)
    side = request.image_size or (224 if net == "imagenet" else FOLDER_SIZE)
    count = len(train) + (len(test) if test is not None else 0)
    classes = {"classes": list(train.classes)}
    augment = Augment(_crop_padding(side), True, 0)
    if net == "cifar" and count * 3 * side * side <= FOLDER_MEMORY_BYTES:
        train_images = _decode(train.samples, side, "load train")
        test_images = _decode(test.samples, side, "load test") if test is not None else None
        mean, std = request.stats or _channel_stats(train_images.images)  # stats are given when train is not loaded
        return ImageData(
            name, len(train.classes), side, net, mean, std, train_images, test_images, augment=augment, extra=classes
        )
    # ImageNet keeps the statistics every ImageNet model uses; a folder set gets its own
    stats = request.stats or (
        (IMAGENET_MEAN, IMAGENET_STD) if name == "imagenet" else _sample_stats(train.samples, side)
    )
    train_tf, test_tf = _streamed_transforms(net, side, stats)
    return ImageData(
        name,
        len(train.classes),
        side,
        net,
        stats[0],
        stats[1],
        train,
        test,
        augment=augment,
        train_transform=train_tf,
        test_transform=test_tf,
        extra=classes,
    )


def _load_imagenet(request: _Request) -> ImageData:
    data_dir = request.data_dir
    if request.download:
        raise GdasError("--download: ImageNet cannot be downloaded automatically; put train/ and val/ under --data-dir")
    if not (data_dir / "train").is_dir():
        raise GdasError(
            f"--data-dir {data_dir}: no ImageNet folder {data_dir / 'train'} "
            "(expected train/ and val/ with one subfolder per class)"
        )
    return _folder_data("imagenet", data_dir, ("val",), request, request.net or "imagenet")


DATASETS: dict[str, Callable[[_Request], ImageData]] = {
    "cifar10": _load_cifar(10),
    "cifar100": _load_cifar(100),
    "imagenet": _load_imagenet,
    "digits": _load_digits,
}
FOLDER_PREFIX = "folder:"
# what `describe` says of the built-in and paper sets, without loading them
_KNOWN_FACTS: dict[str, tuple[int, int, int]] = {
    "digits": (1797 - DIGITS_TEST_SIZE, 10, 8),  # sklearn's 8x8 pixels, whatever side they are loaded at
    "cifar10": (50_000, 10, 32),
    "cifar100": (50_000, 100, 32),
    "imagenet": (1_281_167, 1000, 224),
}


def published_dataset(spec: str) -> str:
    """What a published file may say of a data set: its name, or `folder` for a local folder (never its path)."""
    return "folder" if spec.startswith(FOLDER_PREFIX) else spec


def default_hflip(spec: str) -> bool:
    """Whether training images of a set are flipped by default: CIFAR's and ImageNet's (the 2019 code) and
    folders' (ours, as timm's default) are; the digits' are not (they are not mirror-symmetric)."""
    return spec != "digits"


def flip_source(spec: str) -> str:
    return "2019 code" if spec in ("cifar10", "cifar100", "imagenet") else "ours"


def dataset_names() -> list[str]:
    return [*DATASETS, f"{FOLDER_PREFIX}PATH"]


def folder_path(spec: str) -> Path:
    """PATH of a `folder:PATH` spec (~ expanded)."""
    path = Path(spec[len(FOLDER_PREFIX) :]).expanduser()
    if not str(spec[len(FOLDER_PREFIX) :]):
        raise GdasError(f"{spec}: give the folder, e.g. folder:~/data/flowers")
    return path


def load_images(
    spec: str,
    data_dir: Path | str = "data",
    *,
    download: bool = False,
    net: str | None = None,
    image_size: int | None = None,
    stats: Stats | None = None,
    test: bool = True,
    train: bool = True,
) -> ImageData:
    """The dataset named by `spec`: a DATASETS name or `folder:PATH` (PATH/train and PATH/val or PATH/test).

    `net` picks the network family of folder sets: "cifar" (the default) or "imagenet". `image_size` resizes
    to a square side (default: the set's own; 32 for folders, 224 for imagenet folders). `stats` normalises
    with a given (mean, std) instead of the set's own (a published model's). `test=False` loads the
    training split alone (a search needs no test folder); `test` is then None. `train=False` with `stats`
    given skips a folder set's training images (evaluating weights with their recorded statistics).
    """
    if net not in (None, "cifar", "imagenet"):
        raise GdasError(f"--net: {net!r} must be cifar or imagenet")
    if image_size is not None and image_size < 8:
        raise GdasError(f"--image-size: {image_size} must be at least 8")
    request = _Request(Path(data_dir).expanduser(), download, net, image_size, stats, test, train or stats is None)
    if spec.startswith(FOLDER_PREFIX):
        path = folder_path(spec)
        return _folder_data(f"folder:{path}", path, ("val", "test"), request, net or "cifar")
    if spec not in DATASETS:
        raise GdasError(f"{spec}: unknown dataset; known: {', '.join(dataset_names())}")
    return DATASETS[spec](request)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _median_side(files: Sequence[Path]) -> int:
    """The median of sqrt(width x height) over up to SIZE_SAMPLE files, from their headers alone."""
    from PIL import Image

    step = max(1, len(files) // SIZE_SAMPLE)
    sides = []
    for path in list(files)[::step][:SIZE_SAMPLE]:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, SyntaxError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise read_failure(err, path, f"{path}: not a readable image ({first})") from None
        sides.append(round((width * height) ** 0.5))
    return int(np.median(sides))


def describe(spec: str, data_dir: Path | str = "data") -> DataFacts:
    """The facts the sizing rule needs: training images, classes and the native side, without decoding images.

    A folder's classes are its train/ subfolders and its side the median over a sample of image headers.
    """
    if spec in _KNOWN_FACTS:
        images, classes, side = _KNOWN_FACTS[spec]
        return DataFacts(spec, images, classes, side)
    if not spec.startswith(FOLDER_PREFIX):
        raise GdasError(f"{spec}: unknown dataset; known: {', '.join(dataset_names())}")
    root = folder_path(spec)
    train = root / "train"
    if not root.is_dir():
        raise GdasError(f"{root}: no such folder; {folder_layout(root)}")
    if not train.is_dir():
        raise GdasError(f"{train}: missing training folder; {folder_layout(root)}")
    folders = sorted(d for d in train.iterdir() if d.is_dir())
    files = [f for folder in folders for f in _image_files(folder)]
    if not folders or not files:
        raise GdasError(f"{train}: no images found in class folders; {folder_layout(root)}")
    return DataFacts(spec, len(files), len(folders), _median_side(files))


def split_indices(n: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded 50/50 split of range(n) (the search's train/valid halves of a training set)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    half = n // 2
    return sorted(order[:half]), sorted(order[half:])


def holdout_indices(n: int, count: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of range(n) into (the rest, `count` held-out indices): final training's validation split."""
    if not 0 < count < n:
        raise GdasError(f"--val-split: must be between 1 and {n - 1} (the training set has {n} images), got {count}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[count:]), sorted(order[:count])


# ---------------------------------------------------------------------------------------- ordering


_P = 2_147_483_647  # 2**31 - 1: products with the multipliers below stay far inside int64


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A few rounds of Lehmer multiplication and xor-shift: int64 in [0, 2**31) -> scrambled same range."""
    for multiplier, shift in ((48271, 13), (69621, 17), (16807, 11)):
        x = (x * multiplier) % _P
        x = x ^ (x >> shift)
    return x


def keyed_randint(index: torch.Tensor, seed: int, epoch: int, salt: int, high: int) -> torch.Tensor:
    """A pseudo-random integer in [0, high) per index, a pure function of (seed, epoch, salt, index)."""
    x = index.to(torch.long) % _P
    for part in (seed, epoch, salt):
        x = _mix((x + part % _P + 1) % _P)
    return x % high


def _key_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed % _P) * 1_000_003 + epoch) * 4_294_967_311 + index


def epoch_order(n: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's example order for `epoch`.

    Training (shuffle): a permutation seeded by (seed, epoch), cut to a multiple of world_size and
    dealt out rank::world_size. Evaluation: 0..n-1 dealt out the same way, nothing dropped.
    """
    if not shuffle:
        return torch.arange(rank, n, world_size)
    generator = torch.Generator().manual_seed(_key_seed(seed, epoch, 0) % 2**63)
    order = torch.randperm(n, generator=generator)
    usable = n - n % world_size
    return order[:usable][rank::world_size]


def per_rank_batch(batch_size: int, world_size: int) -> int:
    if batch_size < 1:
        raise GdasError(f"--batch-size: must be at least 1, got {batch_size}")
    if batch_size % world_size:
        raise GdasError(f"--batch-size: {batch_size} is the global batch and must divide by the {world_size} processes")
    return batch_size // world_size


# ------------------------------------------------------------------------------------ batch sources


class TensorBatches:
    """Batches of an in-memory set held on `device`; augmentation as batched tensor ops."""

    def __init__(
        self,
        data: TensorImages,
        *,
        batch_size: int,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        shuffle: bool = True,
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.device, self.seed, self.shuffle = batch_size, device, seed, shuffle
        self.augment, self.rank, self.world_size, self.memory_format = augment, rank, world_size, memory_format
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self._per_rank = len(
            epoch_order(len(data), seed=seed, epoch=0, shuffle=shuffle, rank=rank, world_size=world_size)
        )

    def __len__(self) -> int:
        return math.ceil(self._per_rank / self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(
            len(self.labels),
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
        ).to(self.device)
        for i in range(start, len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.make_batch(index, epoch), self.labels[index]

    def make_batch(self, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """Normalised float images for dataset positions `index`, augmented when training."""
        x = self.images[index].float().div_(255)
        augment = self.augment
        if augment is not None:
            x = self._crop_flip(x, index, epoch, augment)
        x = (x - self.mean) / self.std
        if augment is not None and augment.cutout > 0:
            x = self._cutout(x, index, epoch, augment)
        return x.contiguous(memory_format=self.memory_format)

    def _crop_flip(self, x: torch.Tensor, index: torch.Tensor, epoch: int, augment: Augment) -> torch.Tensor:
        n, _, h, w = x.shape
        pad = augment.crop_padding
        if pad > 0:
            padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zeros = black, as PIL padding
            dy = keyed_randint(index, self.seed, epoch, 1, 2 * pad + 1)
            dx = keyed_randint(index, self.seed, epoch, 2, 2 * pad + 1)
            rows = dy[:, None] + torch.arange(h, device=x.device)
            cols = dx[:, None] + torch.arange(w, device=x.device)
            batch = torch.arange(n, device=x.device)[:, None, None]
            x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if augment.flip:
            flip = keyed_randint(index, self.seed, epoch, 3, 2).bool()
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def _cutout(self, x: torch.Tensor, index: torch.Tensor, epoch: int, augment: Augment) -> torch.Tensor:
        """Zero a length x length square centred at a random pixel, clipped at the borders (as the 2019 Cutout)."""
        _, _, h, w = x.shape
        half = augment.cutout // 2
        cy = keyed_randint(index, self.seed, epoch, 4, h)[:, None, None]
        cx = keyed_randint(index, self.seed, epoch, 5, w)[:, None, None]
        ys = torch.arange(h, device=x.device)[None, :, None]
        xs = torch.arange(w, device=x.device)[None, None, :]
        hole = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)
        return x.masked_fill(hole[:, None], 0.0)


class _KeyedDataset(Dataset):
    """dataset[(epoch, i)] applies the transform under a torch RNG seeded from (seed, epoch, i)."""

    def __init__(self, base: Any, transform: Callable | None, seed: int) -> None:
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        image, label = self.base[index]
        if self.transform is None:
            return image, label
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_key_seed(self.seed, epoch, index) % 2**63)
            return self.transform(image), label


def _ignore_sigint(worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which stops at the next step and checkpoints."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LoaderBatches:
    """Batches of an indexable (image, label) dataset through a DataLoader, moved to `device`."""

    def __init__(
        self,
        dataset: Any,
        transform: Callable | None,
        *,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.dataset = _KeyedDataset(dataset, transform, seed)
        self.batch_size, self.device, self.seed, self.shuffle = batch_size, device, seed, shuffle
        self.rank, self.world_size, self.num_workers, self.memory_format = rank, world_size, num_workers, memory_format
        self._per_rank = len(
            epoch_order(len(dataset), seed=seed, epoch=0, shuffle=shuffle, rank=rank, world_size=world_size)
        )

    def __len__(self) -> int:
        return math.ceil(self._per_rank / self.batch_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(
            len(self.dataset),
            seed=self.seed,
            epoch=epoch,
            shuffle=self.shuffle,
            rank=self.rank,
            world_size=self.world_size,
        )[start * self.batch_size :]
        keys = [(epoch, i) for i in order.tolist()]
        pin = self.device.type == "cuda"
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=keys,
            num_workers=self.num_workers,
            pin_memory=pin,
            drop_last=False,
            worker_init_fn=_ignore_sigint if self.num_workers else None,
        )
        try:
            for images, labels in loader:
                images = images.to(self.device, non_blocking=pin, memory_format=self.memory_format)
                yield images, labels.to(self.device, non_blocking=pin)
        except GdasError as err:  # from a worker, the message carries its traceback: keep the error line
            last = str(err).strip().splitlines()[-1]
            raise reworded(err, last.split("Error: ", 1)[-1]) from None


class PairedBatches:
    """Two sources stepped together, e.g. the search's (train batch, valid batch) per step."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return min(len(self.first), len(self.second))

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
        return zip(self.first.batches(epoch, start), self.second.batches(epoch, start), strict=False)


class Cutout:
    """Zero a length x length square at a random centre of a (C, H, W) tensor, clipped at the borders."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = image.shape
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        half = self.length // 2
        image = image.clone()
        image[:, max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0
        return image


class _SourceOptions(TypedDict):
    """The keyword arguments TensorBatches and LoaderBatches share."""

    batch_size: int
    device: torch.device
    seed: int
    shuffle: bool
    rank: int
    world_size: int
    memory_format: torch.memory_format


def make_batches(
    data: ImageData,
    split: str,
    *,
    batch_size: int,
    device: torch.device,
    train: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    indices: Sequence[int] | None = None,
    augment: Augment | None = None,
    augmented: bool | None = None,
    num_workers: int = 0,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> TensorBatches | LoaderBatches:
    """The batch source for `split` ("train" or "test") of `data`, optionally restricted to `indices`.

    `batch_size` is the global batch; each rank gets batch_size / world_size. Training sources
    shuffle; they are augmented unless `augmented` is False (test sources never are), with `augment`
    (default `data.augment`): tensor ops for in-memory sets, `data.train_transform(augment)` for streamed ones.
    """
    per_rank = per_rank_batch(batch_size, world_size)
    source = data.train if split == "train" else data.test
    common = _SourceOptions(
        batch_size=per_rank,
        device=device,
        seed=seed,
        shuffle=train,
        rank=rank,
        world_size=world_size,
        memory_format=memory_format,
    )
    augmented = train if augmented is None else augmented and train
    if source is None:
        raise GdasError(f"{data.name}: no {split} split was loaded")
    chosen = (augment or data.augment) if augmented else None
    if isinstance(source, TensorImages):
        if indices is not None:
            source = source.subset(indices)
        return TensorBatches(source, mean=data.mean, std=data.std, augment=chosen, **common)
    if indices is not None:
        source = torch.utils.data.Subset(source, list(indices))
    transform = data.test_transform
    if chosen is not None and data.train_transform is not None:
        transform = data.train_transform(chosen)
    return LoaderBatches(source, transform, num_workers=num_workers, **common)
