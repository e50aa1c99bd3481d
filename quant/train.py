"""One training loop for the float teacher and the QAT student (with distillation), on an
`ImageSet` held in memory or streamed, on the CPU or a GPU."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitfpga.errors import BadInput
from vitfpga.quant.data import Split
from vitfpga.quant.distill import kd_loss
from vitfpga.quant.images import DIGITS_BACKGROUND, ImageSet

__all__ = ["BACKGROUND", "accuracy", "accuracy_set", "predict", "predict_set", "resolve_device",
           "train"]

BACKGROUND = DIGITS_BACKGROUND  # a zero pixel after data.py's digits normalisation
CPU = torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """`auto` (a CUDA GPU when there is one, else the CPU), `cpu` or `cuda`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return CPU
    if name == "cuda":
        if not torch.cuda.is_available():
            raise BadInput("--device cuda: no CUDA GPU is available to torch here; use "
                           "--device cpu or auto")
        return torch.device("cuda")
    raise BadInput(f"unknown device '{name}'; known: auto, cpu, cuda")


def _shift_augment(x: torch.Tensor, gen: torch.Generator,
                   background: tuple[float, ...] = (BACKGROUND,)) -> torch.Tensor:
    """Random translation by up to one pixel, the border filled with the set's background:
    digits are small, so this is the augmentation that matters."""
    h, w = x.shape[-2:]
    if len(set(background)) == 1:
        padded = F.pad(x, (1, 1, 1, 1), value=background[0])
    else:
        fill = torch.tensor(background, dtype=x.dtype).view(1, -1, 1, 1)
        padded = fill.expand(x.shape[0], -1, h + 2, w + 2).clone()
        padded[:, :, 1:-1, 1:-1] = x
    dy, dx = torch.randint(0, 3, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), CPU)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Logits of in-memory images, computed where the model is, returned on the CPU."""
    model.eval()
    dev = _device_of(model)
    return torch.cat([model(x[i:i + batch].to(dev)).cpu() for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(-1) == y).float().mean())


@torch.no_grad()
def predict_set(model: nn.Module, images: ImageSet, batch: int = 256,
                device: torch.device = CPU) -> torch.Tensor:
    """Logits (on the CPU) of every image of the set, in its order, batch by batch on
    `device`; the model goes back where it was."""
    home = _device_of(model)
    model.to(device).eval()
    try:
        out = [model(x.to(device)).cpu() for x, _ in images.batches(batch)]
    finally:
        model.to(home)
    return torch.cat(out) if out else torch.empty(0, 0)


def accuracy_set(model: nn.Module, images: ImageSet, batch: int = 256,
                 device: torch.device = CPU) -> float:
    logits = predict_set(model, images, batch, device)
    return float((logits.argmax(-1) == images.labels).float().mean())


def train(model: nn.Module, split: Split, *, epochs: int, lr: float, seed: int,
          batch_size: int = 64, teacher: nn.Module | None = None, kd_weight: float = 0.0,
          temperature: float = 2.0, on_epoch: Callable[[int, float], None] | None = None,
          device: torch.device = CPU) -> nn.Module:
    """AdamW with a cosine schedule; distils from `teacher` when given. Runs on `device` and
    returns the model on the CPU in eval mode; `on_epoch` sees it on the CPU too (pruning masks
    are updated there)."""
    images = split.train
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    teacher_home = None if teacher is None else _device_of(teacher)
    if teacher is not None:
        teacher.to(device).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    try:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(images), generator=gen)
            total = 0.0
            for x, y in images.batches(batch_size, order):
                x = _shift_augment(x, gen, images.background).to(device)
                loss = _loss(model, teacher, x, y.to(device), kd_weight, temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(y)
            if on_epoch is not None:
                mean = total / len(order)
                _on_cpu(model, device, lambda e=epoch, m=mean: on_epoch(e, m))
    finally:
        model.to(CPU)
        if teacher is not None:
            teacher.to(teacher_home)
    model.eval()
    return model


def _loss(model: nn.Module, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
          kd_weight: float, temperature: float) -> torch.Tensor:
    logits = model(x)
    if teacher is None:
        return F.cross_entropy(logits, y, label_smoothing=0.05)
    with torch.no_grad():
        t_logits = teacher(x)
    return kd_loss(logits, t_logits, y, kd_weight, temperature)


def _on_cpu(model: nn.Module, device: torch.device, call: Callable[[], None]) -> None:
    """Run `call` with the model on the CPU. Module.to moves parameters in place, so the
    optimiser keeps its references; its state stays on `device`, untouched meanwhile."""
    if device.type == "cpu":
        call()
        return
    model.to(CPU)
    try:
        call()
    finally:
        model.to(device)
