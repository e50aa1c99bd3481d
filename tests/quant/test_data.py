"""The run's images: the built-in digits stay as they were; the user's folders and .npz files
load with the right shapes, labels and normalisation, in memory or streamed; bad data is one
line naming the file and the problem."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitfpga.errors import BadInput
from vitfpga.quant.compress import calibration_images
from vitfpga.quant.data import holdout, load_data, load_digits_split, scan_data
from vitfpga.quant.images import StreamedImages, TensorImages
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.quant.train import accuracy, predict, predict_set, resolve_device, train


def _digit_pixels(count_per_class: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Real digits as uint8 8x8 images (0..16 scaled to 0..240), `count` of each class."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xs, ys = [], []
    for k, n in enumerate(count_per_class):
        idx = np.flatnonzero(d.target == k)[:n]
        xs.append((d.images[idx] * 15).astype(np.uint8))
        ys += [k] * n
    return np.concatenate(xs), np.asarray(ys, dtype=np.int64)


def _write_folder(root: Path, counts: tuple[int, ...] = (10, 10, 10), rgb: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Class folders c0, c1, ... of PNGs named so that sorted order is writing order."""
    x, y = _digit_pixels(counts)
    if rgb:  # a different scale per channel, so channel mix-ups show
        x = np.stack([x, x // 2, 255 - x], axis=-1)
    for i, (img, k) in enumerate(zip(x, y, strict=True)):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"c{k}" / f"{i:04d}.png")
    return x, y


def _expected_split(n_labels: np.ndarray, seed: int = 0, test_fraction: float = 0.2):
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(n_labels)), test_size=test_fraction,
                            random_state=seed, stratify=n_labels)


# -- the built-in digits -----------------------------------------------------------------------

def test_digits_split_is_unchanged() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0 - 0.3) / 0.4
    xtr, xte, ytr, yte = train_test_split(images, d.target, test_size=0.2, random_state=0,
                                          stratify=d.target)
    split = load_digits_split()
    assert torch.equal(split.x_train, torch.from_numpy(xtr).unsqueeze(1))
    assert torch.equal(split.x_test, torch.from_numpy(xte).unsqueeze(1))
    assert torch.equal(split.y_train, torch.from_numpy(ytr.astype(np.int64)))
    assert torch.equal(split.y_test, torch.from_numpy(yte.astype(np.int64)))
    assert split.train.background == (-0.75,)
    # the general loader gives the digits the same tensors at their own geometry
    again = load_data(scan_data(None), image_size=8, in_chans=1, mean=None, std=None, seed=0)
    assert torch.equal(again.x_train, split.x_train) and torch.equal(again.y_test, split.y_test)


def test_digits_at_another_geometry() -> None:
    info = scan_data("", max_images=100, seed=1)
    assert (info.kind, info.count, info.num_classes, info.min_size) == ("digits", 100, 10, (8, 8))
    split = load_data(info, image_size=16, in_chans=3, mean=None, std=None, seed=0)
    assert split.x_train.shape == (80, 3, 16, 16) and len(split.y_test) == 20
    assert torch.equal(split.x_train[:, 0], split.x_train[:, 2])  # grayscale replicated
    assert split.x_train.min() >= -1.0 and split.x_train.max() <= 1.0  # mean 0.5, std 0.5
    assert split.train.background == (-1.0, -1.0, -1.0)


def test_holdout_keeps_its_order() -> None:
    split = load_digits_split()
    val = holdout(split, seed=2)
    order = torch.randperm(len(split.y_train), generator=torch.Generator().manual_seed(2))
    cut = round(len(order) * 0.85)
    assert torch.equal(val.x_train, split.x_train[order[:cut]])
    assert torch.equal(val.y_test, split.y_train[order[cut:]])


# -- folders and npz ---------------------------------------------------------------------------

def test_folder_loads_grayscale(tmp_path: Path) -> None:
    x, y = _write_folder(tmp_path)
    info = scan_data(str(tmp_path))
    assert (info.kind, info.classes, info.in_chans, info.count) == ("folder", ("c0", "c1", "c2"),
                                                                   1, 30)
    split = load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0)
    fit, test = _expected_split(y)
    want = (torch.from_numpy(x).float() / 255 - 0.5) / 0.5
    assert torch.allclose(split.x_train[:, 0], want[fit], atol=1e-6)
    assert torch.equal(split.y_test, torch.from_numpy(y[test]))
    assert torch.bincount(split.y_test).tolist() == [2, 2, 2]  # stratified


def test_folder_rgb_channels_and_normalisation(tmp_path: Path) -> None:
    x, y = _write_folder(tmp_path, rgb=True)
    info = scan_data(str(tmp_path))
    assert info.in_chans == 3
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    split = load_data(info, image_size=8, in_chans=3, mean=mean, std=std, seed=0)
    fit, _ = _expected_split(y)
    want = (torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255
            - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(split.x_train, want[fit], atol=1e-5)
    assert split.train.background == pytest.approx((-0.2, -0.8, -0.15))
    gray = load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0)
    luma = torch.from_numpy(x.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])) / 255
    assert torch.allclose(gray.x_train[:, 0], (luma[fit] - 0.5) / 0.5, atol=1e-5)


def test_resize_keeps_a_uniform_image_uniform(tmp_path: Path) -> None:
    for k, value in enumerate((40, 200)):
        (tmp_path / f"k{k}").mkdir()
        for i in range(5):
            Image.new("L", (12, 10), value).save(tmp_path / f"k{k}" / f"{i}.jpg")
    info = scan_data(str(tmp_path))
    assert info.min_size == (10, 12)
    split = load_data(info, image_size=4, in_chans=1, mean=(0.0,), std=(1.0,), seed=0)
    assert split.x_train.shape == (8, 1, 4, 4)
    for img, label in zip(split.x_train, split.y_train, strict=True):
        assert torch.allclose(img, torch.full_like(img, (40, 200)[label] / 255), atol=0.02)


def test_npz_layouts_agree(tmp_path: Path) -> None:
    x, y = _write_folder(tmp_path / "unused")
    np.savez(tmp_path / "nhwc.npz", x=x[..., None], y=y)
    np.savez(tmp_path / "nchw.npz", x=x[:, None].astype(np.float32) / 255, y=y.astype(np.int32))
    np.savez(tmp_path / "nhw.npz", x=x, y=y)
    splits = []
    for name in ("nhwc", "nchw", "nhw"):
        info = scan_data(str(tmp_path / f"{name}.npz"))
        assert (info.kind, info.num_classes, info.in_chans, info.min_size) == ("npz", 3, 1, (8, 8))
        splits.append(load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0))
    fit, test = _expected_split(y)
    want = (torch.from_numpy(x).float() / 255 - 0.5) / 0.5
    assert torch.allclose(splits[0].x_train[:, 0], want[fit], atol=1e-6)
    for other in splits[1:]:
        assert torch.allclose(other.x_train, splits[0].x_train, atol=1e-6)
        assert torch.equal(other.y_test, torch.from_numpy(y[test]))


def test_max_images_is_a_stratified_subset(tmp_path: Path) -> None:
    _write_folder(tmp_path, counts=(10, 20, 30))
    info = scan_data(str(tmp_path), max_images=12, seed=4)
    assert np.bincount(info.labels).tolist() == [2, 4, 6]
    other = scan_data(str(tmp_path), max_images=12, seed=5)
    assert np.bincount(other.labels).tolist() == [2, 4, 6] and other.items != info.items
    assert scan_data(str(tmp_path), max_images=12, seed=4).items == info.items  # seeded
    assert scan_data(str(tmp_path), max_images=1000).count == 60
    with pytest.raises(BadInput, match="--max-images 2 is fewer than the 3 classes"):
        scan_data(str(tmp_path), max_images=2)


# -- streamed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_matches_in_memory(tmp_path: Path, workers: int) -> None:
    _write_folder(tmp_path, counts=(12, 9, 11))
    info = scan_data(str(tmp_path))
    kw = {"image_size": 6, "in_chans": 3, "mean": None, "std": None, "seed": 1,
          "workers": workers}
    held, streamed = load_data(info, **kw), load_data(info, in_memory_limit_bytes=1, **kw)
    assert isinstance(held.train, TensorImages) and isinstance(streamed.train, StreamedImages)
    order = torch.randperm(len(held.train), generator=torch.Generator().manual_seed(0))
    pairs = list(zip(held.train.batches(7, order), streamed.train.batches(7, order),
                     strict=True))
    assert len(pairs) == 4
    for (xa, ya), (xb, yb) in pairs:
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(streamed.test.take(5)[0], held.x_test[:5])
    assert torch.equal(calibration_images(streamed), held.x_train)
    assert streamed.train.background == held.train.background == (-1.0, -1.0, -1.0)
    with pytest.raises(TypeError, match="streamed"):
        _ = streamed.x_train
    val = holdout(streamed, seed=3)
    assert torch.equal(val.test.take(100)[0], holdout(held, seed=3).x_test)


def test_training_on_a_streamed_set_is_the_same(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    _write_folder(tmp_path, counts=(12, 9, 11))
    info = scan_data(str(tmp_path))
    kw = {"image_size": 8, "in_chans": 1, "mean": None, "std": None, "seed": 0, "workers": 0}
    results = []
    for split in (load_data(info, **kw), load_data(info, in_memory_limit_bytes=1, **kw)):
        torch.manual_seed(0)
        model = ViT(ViTConfig(dim=16, depth=1, heads=2, num_classes=3))
        losses: list[float] = []
        train(model, split, epochs=2, lr=1e-3, seed=0, batch_size=8,
              on_epoch=lambda _, loss, out=losses: out.append(loss))
        assert not model.training and next(model.parameters()).device.type == "cpu"
        results.append((losses, predict_set(model, split.test)))
    assert results[0][0] == results[1][0] and len(results[0][0]) == 2
    assert torch.equal(results[0][1], results[1][1])
    held = load_data(info, **kw)
    assert torch.equal(results[0][1], predict(model, held.x_test))
    assert 0.0 <= accuracy(model, held.x_test, held.y_test) <= 1.0


# -- refusals ----------------------------------------------------------------------------------

def _refused(match: str, path: Path | str, **kw: object) -> None:
    with pytest.raises(BadInput, match=match) as e:
        info = scan_data(str(path), **kw)
        load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0, patch_size=2)
    assert "\n" not in str(e.value)


def test_folder_refusals(tmp_path: Path) -> None:
    _refused("no such file or folder", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    _refused("empty.*is empty", tmp_path / "empty")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("L", (8, 8)).save(loose / "a.png")
    _refused("no class sub-folders", loose)
    one = tmp_path / "one"
    _write_folder(one, counts=(4,))
    _refused("only one class folder", one)
    hollow = tmp_path / "hollow"
    _write_folder(hollow, counts=(4, 4))
    (hollow / "c2").mkdir()
    (hollow / "c2" / "notes.txt").write_text("not an image")
    _refused(r"c2: class folder 'c2' holds no \.png", hollow)
    (tmp_path / "text.txt").write_text("x")
    _refused("expected a folder of class sub-folders or an .npz", tmp_path / "text.txt")


def test_bad_images_are_named(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    _write_folder(corrupt, counts=(4, 4))
    (corrupt / "c1" / "bad.PNG").write_bytes(b"definitely not a png")
    _refused(r"bad\.PNG: not a readable image", corrupt)

    mixed = tmp_path / "mixed"
    _write_folder(mixed, counts=(4, 4))
    Image.new("RGB", (8, 8)).save(mixed / "c1" / "colour.png")
    _refused(r"mixed grayscale and colour images .*colour\.png is colour", mixed)

    tiny = tmp_path / "tiny"
    _write_folder(tiny, counts=(4, 4))
    Image.new("L", (1, 5)).save(tiny / "c0" / "small.png")
    _refused(r"small\.png is 5x1, smaller than the model's 2x2 patch", tiny)


def test_truncated_image_fails_at_load_naming_it(tmp_path: Path) -> None:
    _write_folder(tmp_path, counts=(4, 4))
    cut = tmp_path / "c1" / "cut.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:200])
    info = scan_data(str(tmp_path))  # the header is fine
    with pytest.raises(BadInput, match=r"cut\.png: cannot decode the image") as e:
        load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0, workers=0)
    assert "\n" not in str(e.value)
    streamed = load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0,
                         in_memory_limit_bytes=1, workers=2)
    with pytest.raises(BadInput, match=r"cut\.png: cannot decode the image") as e:
        for _ in streamed.train.batches(4):
            pass
        for _ in streamed.test.batches(4):
            pass
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.zeros((6, 8, 8), np.uint8)}, "missing array.*y"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.arange(5) % 2}, r"y has shape \(5,\)"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.array([0, 1, -1, 0, 1, 0])}, "negative"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.array([0, 2, 0, 2, 0, 2])}, "no image has "
                                                                               "label 1"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.array([0, 1, 0.5, 0, 1, 0])}, "integer"),
    ({"x": np.zeros((6, 8, 8), np.uint8), "y": np.zeros(6, np.int64)}, "two classes"),
    ({"x": np.zeros((6, 64), np.uint8), "y": np.arange(6) % 2}, r"x has shape \(6, 64\)"),
    ({"x": np.zeros((6, 3, 8, 3), np.uint8), "y": np.arange(6) % 2}, "ambiguous"),
    ({"x": np.zeros((6, 8, 8, 5), np.uint8), "y": np.arange(6) % 2}, "no channel axis"),
    ({"x": np.zeros((6, 8, 8), np.int16), "y": np.arange(6) % 2}, "x is int16"),
    ({"x": np.full((6, 8, 8), np.nan, np.float32), "y": np.arange(6) % 2}, "NaN"),
])
def test_npz_refusals(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInput, match=match) as e:
        info = scan_data(str(path))
        load_data(info, image_size=8, in_chans=1, mean=None, std=None, seed=0,
                  test_fraction=0.34)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_load_refusals(tmp_path: Path) -> None:
    _write_folder(tmp_path, counts=(4, 4))
    info = scan_data(str(tmp_path))
    kw = {"image_size": 8, "in_chans": 3, "seed": 0}
    with pytest.raises(BadInput, match=r"mean \[0.5, 0.5\] needs 1 or 3 values"):
        load_data(info, mean=(0.5, 0.5), std=None, **kw)
    with pytest.raises(BadInput, match=r"std .* must be positive"):
        load_data(info, mean=None, std=(0.0,), **kw)
    with pytest.raises(BadInput, match="cannot split 8 images of 2 classes"):
        load_data(info, mean=None, std=None, test_fraction=0.1, **kw)


# -- devices -----------------------------------------------------------------------------------

def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BadInput, match="unknown device 'tpu'; known: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_the_gpu_returns_a_cpu_model() -> None:
    split = load_digits_split()
    torch.manual_seed(0)
    teacher = ViT(ViTConfig(dim=16, depth=1, heads=2))
    model = ViT(ViTConfig(dim=16, depth=1, heads=2))
    train(model, split, epochs=1, lr=1e-3, seed=0, teacher=teacher, kd_weight=0.5,
          device=torch.device("cuda"))
    assert {p.device.type for p in [*model.parameters(), *teacher.parameters()]} == {"cpu"}
    logits = predict_set(model, split.test, device=torch.device("cuda"))
    assert torch.allclose(logits, predict(model, split.x_test), atol=1e-4)


def test_os_order_does_not_matter(tmp_path: Path) -> None:
    """Files are taken in sorted order whatever order the file system lists them in."""
    _write_folder(tmp_path, counts=(3, 3))
    info = scan_data(str(tmp_path))
    assert list(info.items) == sorted(info.items)
    assert all(os.path.basename(os.path.dirname(p)) == f"c{k}"
               for p, k in zip(info.items, info.labels, strict=True))
