"""Readers of the user's images (`--data`): a folder of class sub-folders (ImageFolder layout)
or an .npz of `x` and `y`. Scanning reads file headers and array headers only; every problem
is one `BadInput` line naming the file and what is wrong, before any training."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vitfpga.errors import BadInput
from vitfpga.quant.data import DataInfo
from vitfpga.quant.images import ArraySource, FileSource, ImageSource, gray_or_rgb

__all__ = ["IMAGE_EXTENSIONS", "scan", "source", "subset"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_POOL_FROM = 256  # files: from here headers are read by a thread pool (I/O bound)


def subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded subset of `n` items (all when n <= 0 or n >= len), in
    their natural order: each class keeps its share (largest remainder), at least one."""
    total = len(labels)
    if n <= 0 or n >= total:
        return np.arange(total)
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):
        raise BadInput(f"--max-images {n} is fewer than the {len(classes)} classes; keep at "
                       f"least one image per class")
    exact = counts * n / total
    quota = np.maximum(np.floor(exact).astype(np.int64), 1)
    while quota.sum() < n:
        room = np.where(quota < counts, exact - quota, -np.inf)
        quota[int(np.argmax(room))] += 1
    while quota.sum() > n:
        spare = np.where(quota > 1, quota - exact, -np.inf)
        quota[int(np.argmax(spare))] -= 1
    rng = np.random.default_rng(seed)
    pick = [rng.permutation(np.flatnonzero(labels == c))[:q]
            for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(pick))


def scan(path: str, max_images: int, seed: int) -> DataInfo:
    if not os.path.exists(path):
        raise BadInput(f"--data {path}: no such file or folder")
    if os.path.isdir(path):
        return _scan_folder(path, max_images, seed)
    if path.lower().endswith(".npz"):
        return _scan_npz(path, max_images, seed)
    raise BadInput(f"--data {path}: expected a folder of class sub-folders or an .npz file "
                   f"with arrays x and y")


def source(info: DataInfo) -> ImageSource:
    """The undecoded images of `info`, item i being `info.items[i]`."""
    if info.kind == "folder":
        return FileSource(list(info.items))
    if info.kind == "npz":
        return ArraySource(_npz_images(info))
    from sklearn.datasets import load_digits

    images = load_digits().images[info.items] / 16.0  # pixel range is 0..16
    return ArraySource(images.astype(np.float32)[:, :, :, None])


# -- folders -----------------------------------------------------------------------------------

def _images_under(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in files
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
    return sorted(found)


def _class_files(root: str) -> tuple[list[str], list[str], np.ndarray]:
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(root))
        raise BadInput(f"--data {root}: " + ("holds images but no class sub-folders; put each "
                                             "class's images in a sub-folder named after it"
                                             if loose else "is empty; expected one sub-folder "
                                             "of .png/.jpg images per class"))
    if len(classes) == 1:
        raise BadInput(f"--data {root}: only one class folder ('{classes[0]}'); a classifier "
                       f"needs at least two")
    paths: list[str] = []
    labels: list[int] = []
    for k, name in enumerate(classes):
        files = _images_under(os.path.join(root, name))
        if not files:
            raise BadInput(f"{os.path.join(root, name)}: class folder '{name}' holds no "
                           f"{'/'.join(IMAGE_EXTENSIONS)} images")
        paths += files
        labels += [k] * len(files)
    return classes, paths, np.asarray(labels, dtype=np.int64)


def _header(path: str) -> tuple[int, int, int]:
    """(channels, H, W) from the file's header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except Exception as e:  # Pillow: UnidentifiedImageError, OSError, SyntaxError...
        raise BadInput(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    chans = gray_or_rgb(mode)
    if chans is None:
        raise BadInput(f"{path}: image mode {mode} is not supported; save it as grayscale or "
                       f"RGB PNG/JPEG")
    return chans, h, w


def _scan_folder(root: str, max_images: int, seed: int) -> DataInfo:
    classes, paths, labels = _class_files(root)
    pick = subset(labels, max_images, seed)
    paths, labels = [paths[i] for i in pick], labels[pick]
    if len(paths) >= _POOL_FROM:
        with ThreadPoolExecutor(max_workers=8) as pool:
            headers = list(pool.map(_header, paths))
    else:
        headers = [_header(p) for p in paths]
    first: dict[int, str] = {}
    for p, (c, _, _) in zip(paths, headers, strict=True):
        first.setdefault(c, p)
    if len(first) > 1:
        raise BadInput(f"--data {root}: mixed grayscale and colour images ({first[1]} is "
                       f"grayscale, {first[3]} is colour); convert them all to one")
    smallest = min(range(len(paths)), key=lambda i: min(headers[i][1:]))
    return DataInfo("folder", root, tuple(classes), headers[0][0], headers[smallest][1:],
                    paths[smallest], tuple(paths), labels)


# -- npz ---------------------------------------------------------------------------------------

def _layout(path: str, shape: tuple[int, ...]) -> str:
    """'NHW', 'NHWC' or 'NCHW': the channel axis is the one of size 1 or 3."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise BadInput(f"{path}: x has shape {shape}; expected N×H×W×C, N×C×H×W or N×H×W")
    last, second = shape[3] in (1, 3), shape[1] in (1, 3)
    if last and second:
        raise BadInput(f"{path}: x shape {shape} is ambiguous (axis 1 and axis 3 could both be "
                       f"channels); store it as N×H×W×C")
    if not (last or second):
        raise BadInput(f"{path}: x has shape {shape} but no channel axis of size 1 or 3 "
                       f"(N×H×W×C or N×C×H×W)")
    return "NHWC" if last else "NCHW"


def _read_header(npz: np.lib.npyio.NpzFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with npz.zip.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    return shape, dtype


def _labels(path: str, y: np.ndarray, n: int) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != n:
        raise BadInput(f"{path}: y has shape {y.shape}; expected ({n},), one label per image")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise BadInput(f"{path}: y must hold integer class labels 0..K-1, not {y.dtype}")
    if (bad := np.flatnonzero(y < 0)).size:
        raise BadInput(f"{path}: y[{bad[0]}] = {y[bad[0]]} is negative; labels are 0..K-1")
    k = int(y.max()) + 1
    if (missing := np.setdiff1d(np.arange(k), y)).size:
        raise BadInput(f"{path}: no image has label {missing[0]} though labels go up to "
                       f"{k - 1}; labels must be 0..K-1 with every class present")
    if k < 2:
        raise BadInput(f"{path}: every label is 0; a classifier needs at least two classes")
    return y.astype(np.int64)


def _scan_npz(path: str, max_images: int, seed: int) -> DataInfo:
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:
        raise BadInput(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    with npz:
        if missing := [k for k in ("x", "y") if k not in npz.files]:
            raise BadInput(f"{path}: missing array(s) {', '.join(missing)}; it holds "
                           f"{', '.join(npz.files) or 'nothing'} (x: images, y: labels)")
        try:
            shape, dtype = _read_header(npz, "x")
            y = npz["y"]
        except Exception as e:
            raise BadInput(f"{path}: cannot read x/y ({type(e).__name__}: {e})") from None
    layout = _layout(path, shape)
    if dtype != np.uint8 and dtype.kind != "f":
        raise BadInput(f"{path}: x is {dtype}; store uint8 (0..255) or float (0..1) pixels")
    if shape[0] == 0:
        raise BadInput(f"{path}: x holds no images")
    labels = _labels(path, y, shape[0])
    pick = subset(labels, max_images, seed)
    hw = shape[2:4] if layout == "NCHW" else shape[1:3]
    chans = 1 if layout == "NHW" else shape[1] if layout == "NCHW" else shape[3]
    return DataInfo("npz", path, tuple(str(k) for k in range(int(labels.max()) + 1)), chans,
                    tuple(hw), f"{path} x", pick, labels[pick])


def _npz_images(info: DataInfo) -> np.ndarray:
    """x as N×H×W×C, the chosen items only, NaN and infinities refused."""
    with np.load(info.path, allow_pickle=False) as npz:
        x = npz["x"]
    layout = _layout(info.path, x.shape)
    x = x[..., None] if layout == "NHW" else x.transpose(0, 2, 3, 1) if layout == "NCHW" else x
    if len(info.items) != len(x):
        x = x[info.items]
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise BadInput(f"{info.path}: x holds NaN or infinite pixels (image "
                           f"{int(info.items[np.argmax(bad)])})")
    return x
