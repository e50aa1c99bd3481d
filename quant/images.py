"""Image sets: labelled images either held in memory as one tensor, or decoded from their source
(image files, an array) batch by batch, so a folder as large as ImageNet never sits in memory.

Training, prediction and calibration see only `ImageSet`: its length, its labels, batches in a
given order, the first `n` images, and the value the shift augmentation pads with. A streamed set
decodes through a torch DataLoader with worker processes; both kinds decode an item with the
same `Transform`, so a set gives the same images whichever way it is held.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vitfpga.errors import BadInput

__all__ = ["DIGITS_BACKGROUND", "ArraySource", "FileSource", "ImageSet", "StreamedImages",
           "TensorImages", "Transform", "gray_or_rgb", "read_image"]

DIGITS_BACKGROUND = -0.75  # a zero pixel after the digits' own normalisation
Batch = tuple[torch.Tensor, torch.Tensor]

# Pillow modes by the channel count they become: alpha is dropped, palettes and other colour
# spaces become RGB, 16-bit grayscale keeps its depth.
_GRAY_MODES = {"1": 255.0, "L": 255.0, "LA": 255.0, "I;16": 65535.0, "I;16B": 65535.0,
               "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0}
_COLOR_MODES = {"RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}


def gray_or_rgb(mode: str) -> int | None:
    """The channel count a Pillow mode is read as (1 or 3); None when vitfpga cannot read it."""
    if mode in _GRAY_MODES:
        return 1
    return 3 if mode in _COLOR_MODES else None


def read_image(path: str) -> np.ndarray:
    """A file's pixels as float32 H×W×C in 0..1 (C = 1 or 3); a decode error is one line."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in _GRAY_MODES:
                scale = _GRAY_MODES[mode]
                if mode in ("1", "LA"):
                    im = im.convert("L")
                a = np.asarray(im, dtype=np.float32) / scale
            elif mode in _COLOR_MODES:
                a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            else:
                raise BadInput(f"{path}: image mode {mode} is not supported; save it as "
                               f"grayscale or RGB PNG/JPEG")
    except BadInput:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... on bad files
        raise BadInput(f"{path}: cannot decode the image ({type(e).__name__}: {e})") from None
    return a[:, :, None] if a.ndim == 2 else a


@dataclass(frozen=True)
class Transform:
    """One decoded image (H×W×C float in 0..1) -> the model's input: resized to
    `image_size`² (bilinear, Pillow), converted to `in_chans` channels (grayscale replicated,
    RGB to luma), normalised per channel with `mean` and `std`."""

    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def background(self) -> tuple[float, ...]:
        """What a zero (black) pixel normalises to, per channel: the augmentation's padding."""
        return tuple((0.0 - m) / s for m, s in zip(self._per_channel(self.mean),
                                                   self._per_channel(self.std), strict=True))

    def _per_channel(self, values: tuple[float, ...]) -> tuple[float, ...]:
        return values * self.in_chans if len(values) == 1 else values

    def __call__(self, a: np.ndarray) -> torch.Tensor:
        a = _to_chans(a, self.in_chans)
        s = self.image_size
        if a.shape[:2] != (s, s):
            a = _resize(a, s)
        mean = np.asarray(self._per_channel(self.mean), dtype=np.float32)
        std = np.asarray(self._per_channel(self.std), dtype=np.float32)
        return torch.from_numpy(((a - mean) / std).transpose(2, 0, 1).copy())


def _to_chans(a: np.ndarray, chans: int) -> np.ndarray:
    if a.shape[2] == chans:
        return a
    if chans == 3:  # grayscale: the same value in every channel
        return np.repeat(a, 3, axis=2)
    luma = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
    return (a @ luma)[:, :, None].astype(np.float32)


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of each channel in floating point (Pillow mode F): no 8-bit rounding, so
    uint8 files and float arrays go through the same arithmetic."""
    from PIL import Image

    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(a[:, :, c]))
                        .resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
             for c in range(a.shape[2])]
    return np.stack(chans, axis=2)


class ImageSource(ABC):
    """Where undecoded images come from: item i as H×W×C float32 in 0..1."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def read(self, i: int) -> np.ndarray: ...


class FileSource(ImageSource):
    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])


class ArraySource(ImageSource):
    """An N×H×W×C array, uint8 (0..255) or float (0..1)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.scale = 255.0 if x.dtype == np.uint8 else 1.0

    def __len__(self) -> int:
        return len(self.x)

    def read(self, i: int) -> np.ndarray:
        return np.asarray(self.x[i], dtype=np.float32) / np.float32(self.scale)


class ImageSet(ABC):
    """Labelled images, in a fixed natural order."""

    background: tuple[float, ...]  # the shift augmentation's padding, per channel

    @property
    @abstractmethod
    def labels(self) -> torch.Tensor:
        """(N,) int64, without decoding any image."""

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        """(x, y) batches of the images in `order` (default: the natural order), x float32
        (B, C, H, W) on the CPU."""

    @abstractmethod
    def take(self, n: int) -> Batch:
        """The first `n` images (all when fewer), materialised."""

    @abstractmethod
    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at `indices`, in that order."""

    @property
    def streamed(self) -> bool:
        return False


class TensorImages(ImageSet):
    def __init__(self, x: torch.Tensor, y: torch.Tensor,
                 background: tuple[float, ...] = (DIGITS_BACKGROUND,)) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y, self.background = x, y, background

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        if order is None:
            for i in range(0, len(self.y), batch_size):
                yield self.x[i:i + batch_size], self.y[i:i + batch_size]
            return
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield self.x[idx], self.y[idx]

    def take(self, n: int) -> Batch:
        return self.x[:n], self.y[:n]

    def subset(self, indices: torch.Tensor) -> TensorImages:
        return TensorImages(self.x[indices], self.y[indices], self.background)


class _Items(torch.utils.data.Dataset):
    """Item j of a streamed set: (image, label, error). A decode error travels back as its
    message, so the main process raises it as one line instead of a worker traceback."""

    def __init__(self, source: ImageSource, transform: Transform, items: np.ndarray,
                 labels: torch.Tensor) -> None:
        self.source, self.transform, self.items, self.labels = source, transform, items, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> tuple[torch.Tensor | None, int, str]:
        try:
            return self.transform(self.source.read(int(self.items[j]))), int(self.labels[j]), ""
        except BadInput as e:
            return None, 0, str(e)


def _collate(rows: list[tuple[torch.Tensor | None, int, str]]) -> tuple[torch.Tensor | None,
                                                                        torch.Tensor, str]:
    errors = [err for _, _, err in rows if err]
    if errors:
        return None, torch.empty(0, dtype=torch.int64), errors[0]
    return (torch.stack([x for x, _, _ in rows]),
            torch.tensor([y for _, y, _ in rows], dtype=torch.int64), "")


def default_workers() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1))


class StreamedImages(ImageSet):
    """Images decoded from `source` when a batch is asked for, by `workers` processes."""

    def __init__(self, source: ImageSource, transform: Transform, items: np.ndarray,
                 labels: torch.Tensor, workers: int | None = None) -> None:
        self.source, self.transform = source, transform
        self.items = np.asarray(items, dtype=np.int64)
        self._labels = labels
        self.background = transform.background
        self.workers = default_workers() if workers is None else workers

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    @property
    def streamed(self) -> bool:
        return True

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        order = torch.arange(len(self)) if order is None else order
        chunks = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
        if not chunks:
            return
        dataset = _Items(self.source, self.transform, self.items, self._labels)
        workers = min(self.workers, len(chunks))
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=chunks, num_workers=workers,
                                             collate_fn=_collate,
                                             prefetch_factor=4 if workers else None)
        for x, y, err in loader:
            if err:
                raise BadInput(err)
            yield x, y

    def take(self, n: int) -> Batch:
        n = min(n, len(self))
        got = list(self.batches(max(n, 1), torch.arange(n)))
        if not got:
            empty = torch.empty(0, self.transform.in_chans, self.transform.image_size,
                                self.transform.image_size)
            return empty, self._labels[:0]
        return got[0]

    def subset(self, indices: torch.Tensor) -> StreamedImages:
        return StreamedImages(self.source, self.transform, self.items[indices.numpy()],
                              self._labels[indices], self.workers)

    def materialise(self, batch_size: int = 256) -> TensorImages:
        """Every image decoded into one tensor (the caller checked that it fits)."""
        xs, ys = zip(*self.batches(batch_size), strict=True) if len(self) else ((), ())
        x = torch.cat(xs) if xs else self.take(0)[0]
        return TensorImages(x, torch.cat(ys) if ys else self._labels[:0], self.background)
