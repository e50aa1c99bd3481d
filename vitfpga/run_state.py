"""What every step of a run shares: the state being filled, the step banner and timing, and
the progress bar of a training loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vitfpga.config import RunConfig
from vitfpga.hls.plan.boards import Board, get_board
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.ir import IntModel
from vitfpga.quant.data import Split
from vitfpga.quant.model import ViT
from vitfpga.quant.size import SizeReport
from vitfpga.quant.structure import Structure
from vitfpga.rundir import RunDir
from vitfpga.search import Candidate
from vitfpga.sim.result import SimResult
from vitfpga.sim.synth import SynthReport

__all__ = ["Run", "progress", "step"]


@dataclass
class Run:
    cfg: RunConfig
    out: RunDir  # the temporary directory being filled
    console: Console
    split: Split | None = None
    teacher: ViT | None = None
    student: ViT | None = None
    structure: Structure = field(default_factory=dict)
    model: IntModel | None = None  # the integer model (layers with their rows, spec, params)
    size: SizeReport | None = None
    search: list[Candidate] = field(default_factory=list)
    chosen: str = ""
    plan: ModelPlan | None = None
    accuracy: dict[str, float | None] = field(default_factory=dict)
    agreement: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)
    verification: list[SimResult] = field(default_factory=list)
    hil: dict[str, Any] = field(default_factory=dict)
    whole: dict[str, Any] = field(default_factory=dict)
    synth: SynthReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    board: Board | None = None  # cfg.hardware.board's record, resolved once per run

    def __post_init__(self) -> None:
        # Every step reads this one record (a --boards-file board included), never the name.
        if self.board is None:
            self.board = get_board(self.cfg.hardware.board)

@contextmanager
def step(run: Run, name: str, what: str) -> Iterator[None]:
    run.console.print(f"[bold cyan]▶ {name}[/] {what}")
    start = time.perf_counter()
    yield
    run.timings[name] = round(time.perf_counter() - start, 2)
    run.console.print(f"  [green]✓[/] {name} done in {run.timings[name]:.1f} s")



@contextmanager
def progress(run: Run, label: str, total: int) -> Iterator[Callable[[float], None]]:
    """A transient bar over `total` epochs; the yielded callback takes each epoch's loss, which
    also lands in the report's training plot."""
    losses: list[float] = []
    with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                  console=run.console, transient=True) as bar:
        task = bar.add_task(label, total=total, loss=float("nan"))

        def on_epoch(loss: float) -> None:
            losses.append(loss)
            bar.update(task, advance=1, loss=loss)

        yield on_epoch
    run.history[label] = losses
