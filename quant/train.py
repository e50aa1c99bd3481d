"""One training loop for the float teacher and the QAT student (with distillation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitfpga.quant.data import Split
from vitfpga.quant.distill import kd_loss

__all__ = ["accuracy", "predict", "train"]

BACKGROUND = -0.75  # a zero pixel after data.py's normalisation


def _shift_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to one pixel: digits are small, so this is the augmentation that
    matters."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), value=BACKGROUND)
    dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(-1) == y).float().mean())


def train(model: nn.Module, split: Split, *, epochs: int, lr: float, seed: int,
          batch_size: int = 64, teacher: nn.Module | None = None, kd_weight: float = 0.0,
          temperature: float = 2.0,
          on_epoch: Callable[[int, float], None] | None = None) -> nn.Module:
    """AdamW with a cosine schedule; distils from `teacher` when given."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(split.x_train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    if teacher is not None:
        teacher.eval()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(split.x_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = _shift_augment(split.x_train[idx], gen), split.y_train[idx]
            logits = model(x)
            if teacher is None:
                loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            else:
                with torch.no_grad():
                    t_logits = teacher(x)
                loss = kd_loss(logits, t_logits, y, kd_weight, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if on_epoch is not None:
            on_epoch(epoch, total / len(order))
    model.eval()
    return model
