"""The console side of a run, handed to every stage: its lines, its step banners and timings
(report.json's `timings_s`), its spinners and the progress bar of a training loop. It holds no
model state: stages take values and return values."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["Ui"]


@dataclass
class Ui:
    console: Console
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, in run order

    def print(self, text: str) -> None:
        self.console.print(text)

    def status(self, text: str) -> AbstractContextManager[object]:
        return self.console.status(text)

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        """The step's banner, its timing, and its done line."""
        self.console.print(f"[bold cyan]▶ {name}[/] {what}")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 2)
        self.console.print(f"  [green]✓[/] {name} done in {self.timings[name]:.1f} s")

    @contextmanager
    def progress(self, label: str, total: int, losses: list[float]
                 ) -> Iterator[Callable[[float], None]]:
        """A transient bar over `total` epochs; the yielded callback takes each epoch's loss,
        which it also appends to `losses` (the caller's, for the report's training plot)."""
        with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=total, loss=float("nan"))

            def on_epoch(loss: float) -> None:
                losses.append(loss)
                bar.update(task, advance=1, loss=loss)

            yield on_epoch
