"""The built-in dataset: scikit-learn's bundled 8x8 digits (1797 images, offline, real)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Split", "holdout", "load_digits_split"]


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor  # (N, 1, 8, 8) float32, roughly zero-mean unit-variance
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A fixed, stratified train/test split; the same seed gives the same split everywhere."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0 - 0.3) / 0.4  # pixel range is 0..16
    xtr, xte, ytr, yte = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)
    as_x = lambda a: torch.from_numpy(a).unsqueeze(1).contiguous()  # noqa: E731
    as_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return Split(as_x(xtr), as_y(ytr), as_x(xte), as_y(yte))


def holdout(split: Split, fraction: float = 0.15, seed: int = 0) -> Split:
    """A validation split carved from the training images (the test images stay unseen): the
    returned Split's `x_test`/`y_test` are the held-out validation images."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split.y_train), generator=gen)
    cut = round(len(order) * (1 - fraction))
    fit, val = order[:cut], order[cut:]
    return Split(split.x_train[fit], split.y_train[fit], split.x_train[val], split.y_train[val])
