"""The run's images: scikit-learn's bundled 8x8 digits (1797 images, offline, real) by default,
or the user's own (`--data`: a folder of class sub-folders, or an .npz of `x` and `y`).

`scan_data` looks at a source cheaply and refuses bad input before any training;
`load_data` turns what it found into a stratified train/test `Split` of `ImageSet`s at the
model's image size and channel count, in memory when the decoded images fit a byte limit and
streamed from disk otherwise. The digits path at the built-in geometry is the original one,
tensor for tensor (`load_digits_split`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vitfpga.errors import BadInput
from vitfpga.quant.images import (
    DIGITS_BACKGROUND,
    ImageSet,
    StreamedImages,
    TensorImages,
    Transform,
)

__all__ = ["DataInfo", "Split", "check_geometry", "holdout", "load_data", "load_digits_split",
           "scan_data"]

IN_MEMORY_LIMIT = 2 << 30  # bytes of decoded float32 images held in memory, else streamed
DEFAULT_MEAN, DEFAULT_STD = (0.5,), (0.5,)  # 0..1 -> -1..1, the usual ViT input range


@dataclass(frozen=True, init=False, eq=False)
class Split:
    """Train and test images. `Split(train, test)` with `ImageSet`s, or the original
    `Split(x_train, y_train, x_test, y_test)` with in-memory tensors."""

    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]

    def __init__(self, *parts: ImageSet | torch.Tensor, classes: tuple[str, ...] = ()) -> None:
        if len(parts) == 4:
            train = TensorImages(parts[0], parts[1])
            test = TensorImages(parts[2], parts[3])
        elif len(parts) == 2 and all(isinstance(p, ImageSet) for p in parts):
            train, test = parts
        else:
            raise TypeError("Split(train, test) with ImageSets or Split(x_train, y_train, "
                            "x_test, y_test) with tensors")
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "classes", tuple(classes))

    @staticmethod
    def _tensors(images: ImageSet, which: str) -> TensorImages:
        if not isinstance(images, TensorImages):
            raise TypeError(f"the {which} images are streamed from disk, not held in memory: "
                            f"use split.{which}.batches() or split.{which}.take(n)")
        return images

    @property
    def x_train(self) -> torch.Tensor:
        return self._tensors(self.train, "train").x

    @property
    def y_train(self) -> torch.Tensor:
        return self.train.labels

    @property
    def x_test(self) -> torch.Tensor:
        return self._tensors(self.test, "test").x

    @property
    def y_test(self) -> torch.Tensor:
        return self.test.labels


def _stratified(labels: np.ndarray, test_fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices (sklearn's stratified split, the order it gives)."""
    from sklearn.model_selection import train_test_split

    try:
        fit, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                     random_state=seed, stratify=labels)
    except ValueError as e:
        raise BadInput(f"cannot split {len(labels)} images of {len(np.unique(labels))} classes "
                       f"with test fraction {test_fraction}: {e}") from None
    return fit, test


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A fixed, stratified train/test split; the same seed gives the same split everywhere."""
    images, target = _digits()
    return _digits_native(images, target, test_fraction, seed)


def _digits_native(images: np.ndarray, target: np.ndarray, test_fraction: float,
                   seed: int) -> Split:
    images = (images.astype(np.float32) / 16.0 - 0.3) / 0.4  # pixel range is 0..16
    fit, test = _stratified(target, test_fraction, seed)
    as_x = lambda a: torch.from_numpy(a).unsqueeze(1).contiguous()  # noqa: E731
    as_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return Split(TensorImages(as_x(images[fit]), as_y(target[fit]), (DIGITS_BACKGROUND,)),
                 TensorImages(as_x(images[test]), as_y(target[test]), (DIGITS_BACKGROUND,)),
                 classes=tuple(str(d) for d in range(10)))


def holdout(split: Split, fraction: float = 0.15, seed: int = 0) -> Split:
    """A validation split carved from the training images (the test images stay unseen): the
    returned Split's `test` (`x_test`/`y_test`) holds the validation images."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split.train), generator=gen)
    cut = round(len(order) * (1 - fraction))
    fit, val = order[:cut], order[cut:]
    return Split(split.train.subset(fit), split.train.subset(val), classes=split.classes)


@dataclass(frozen=True, eq=False)
class DataInfo:
    """What `scan_data` found: enough to size the model and refuse bad data, nothing decoded.
    `items` are file paths (folder) or indices into the array (npz, digits), chosen by
    `--max-images` when given; `labels` are theirs."""

    kind: str  # "digits", "folder" or "npz"
    path: str | None
    classes: tuple[str, ...]
    in_chans: int
    min_size: tuple[int, int]  # the smallest image's (H, W)
    min_size_item: str  # which image that is (a file, or x[i])
    items: tuple[str, ...] | np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def count(self) -> int:
        return len(self.labels)

    def describe(self) -> str:
        h, w = self.min_size
        where = "scikit-learn digits" if self.kind == "digits" else f"{self.kind} {self.path}"
        return (f"{where}: {self.count} images, {self.num_classes} classes, "
                f"{self.in_chans} channel(s), smallest {h}x{w}")


def scan_data(path: str | None, max_images: int = 0, seed: int = 0) -> DataInfo:
    """Look at a data source without decoding it all, refusing bad data in one line. None or
    "" is the built-in digits. `max_images` > 0 keeps a stratified, seeded subset."""
    from vitfpga.quant import readers

    if not path:
        images, target = _digits()
        pick = readers.subset(target, max_images, seed)
        return DataInfo("digits", None, tuple(str(d) for d in range(10)), 1, images.shape[1:3],
                        "digits", pick, target[pick].astype(np.int64))
    return readers.scan(path, max_images, seed)


def check_geometry(info: DataInfo, image_size: int, in_chans: int, patch_size: int | None,
                   mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
    """The images suit the model (channels, patch, normalisation), or one line: called when a
    run starts, before training, and again by `load_data`."""
    mean = DEFAULT_MEAN if mean is None else mean
    std = DEFAULT_STD if std is None else std
    if in_chans not in (1, 3):
        raise BadInput(f"the model takes {in_chans} input channels; images are read as 1 "
                       f"(grayscale) or 3 (RGB)")
    if image_size < 1:
        raise BadInput(f"image size {image_size} must be positive")
    if patch_size is not None and min(info.min_size) < patch_size:
        h, w = info.min_size
        raise BadInput(f"{info.min_size_item} is {h}x{w}, smaller than the model's "
                       f"{patch_size}x{patch_size} patch")
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, in_chans):
            raise BadInput(f"{name} {list(values)} needs 1 or {in_chans} values (one per "
                           f"input channel)")
    if not all(s > 0 for s in std):
        raise BadInput(f"std {list(std)} must be positive")


def load_data(info: DataInfo, *, image_size: int, in_chans: int,
              mean: tuple[float, ...] | None, std: tuple[float, ...] | None, seed: int,
              test_fraction: float = 0.2, in_memory_limit_bytes: int = IN_MEMORY_LIMIT,
              patch_size: int | None = None, workers: int | None = None) -> Split:
    """A stratified, seeded train/test split of `info`'s images as the model takes them
    (see `images.Transform`). mean/std None: the dataset's own normalisation, i.e. the
    original one for the digits at 8x8 with one channel, (0.5, 0.5) otherwise."""
    native = info.kind == "digits" and (image_size, in_chans) == (8, 1)
    if native and mean is None and std is None:
        images, target = _digits()
        return _digits_native(images[info.items], target[info.items], test_fraction, seed)
    mean = DEFAULT_MEAN if mean is None else tuple(mean)
    std = DEFAULT_STD if std is None else tuple(std)
    check_geometry(info, image_size, in_chans, patch_size, mean, std)
    from vitfpga.quant import readers

    source = readers.source(info)
    transform = Transform(image_size, in_chans, mean, std)
    fit, test = _stratified(info.labels, test_fraction, seed)
    labels = torch.from_numpy(info.labels.astype(np.int64))
    sets = [StreamedImages(source, transform, np.asarray(idx), labels[idx], workers)
            for idx in (fit, test)]
    if info.count * in_chans * image_size**2 * 4 <= in_memory_limit_bytes:
        sets = [s.materialise() for s in sets]
    return Split(*sets, classes=info.classes)

