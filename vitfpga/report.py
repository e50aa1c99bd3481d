"""report.json (machine-readable, design.md §9), report.md and its plot, for people."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "write_report"]


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "python": platform.python_version(),
            "torch": torch.__version__}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _markdown(r: dict[str, Any], notes: list[str]) -> str:
    acc, plan, size = r["accuracy"], r["plan"], r["size_bytes"]
    lines = [
        "# vitfpga run report", "",
        "## Accuracy (top-1, digits test split)", "",
        "| model | top-1 |", "|---|---|",
        f"| float teacher | {_pct(acc['float'])} |",
        f"| Brevitas QAT (fake-quant) | {_pct(acc['qat'])} |",
        f"| integer golden | {_pct(acc['integer'])} |",
        f"| RTL in the loop | {_pct(acc['rtl'])} |", "",
        f"Top-1 agreement, QAT vs integer golden: {_pct(r['agreement_qat_integer'])}.", "",
        "## Size", "",
        f"fp32: {size['fp32']:,} bytes; compressed: {size['compressed']:,} bytes "
        f"({r['compression_ratio']:.1f}x).", "",
        "## Plan", "",
        "| board | layer | PE | SIMD | BRAM36 | URAM | DSP | LUT (est.) | BRAM eff. | "
        "cycles/image | clock |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {plan['board']} | {plan['layer']} | {plan['pe']} | {plan['simd']} | {plan['bram36']} "
        f"| {plan['uram']} | {plan['dsp']} | {plan['lut']} | {plan['bram_efficiency']:.1%} | "
        f"{plan['cycles_per_image']} | {plan['clock_mhz']:g} MHz |", "",
        "## Verification (bit-exact against the integer golden)", "",
        "| target | layer | compared | mismatches | cycles | ideal cycles |",
        "|---|---|---|---|---|---|",
    ]
    for v in r["verification"]:
        cycles = "n/a (not cycle-accurate)" if v["cycles"] is None else v["cycles"]
        lines.append(f"| {v['target']} | {v['layer']} | {v['compared']} | {v['mismatches']} | "
                     f"{cycles} | {v['ideal_cycles']} |")
    m = r["machine"]
    lines += ["", "![training and verification](report.png)", "", "## Notes", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
              f"torch {m['torch']}.", ""]
    return "\n".join(lines)


def _plot(path: Path, history: dict[str, list[float]], r: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, losses in history.items():
        ax1.plot(range(1, len(losses) + 1), losses, label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.set_title("Training")
    ax1.legend()
    rows = [v for v in r["verification"] if v["cycles"] is not None]
    labels = [v["target"] for v in rows]
    ax2.bar([i - 0.2 for i in range(len(rows))], [v["ideal_cycles"] for v in rows], 0.4,
            label="ideal")
    ax2.bar([i + 0.2 for i in range(len(rows))], [v["cycles"] for v in rows], 0.4,
            label="measured")
    ax2.set_xticks(range(len(rows)), labels)
    ax2.set_ylabel("clock cycles")
    for i, v in enumerate(rows):
        ax2.annotate(f"{v['ideal_cycles'] / v['cycles']:.1%} MAC util.", (i, v["cycles"]),
                     ha="center", va="bottom", fontsize=8)
    ax2.set_ylim(0, 1.25 * max([v["cycles"] for v in rows], default=1))
    ax2.set_title("RTL cycles, verified layer")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_report(out: Path, report: dict[str, Any], history: dict[str, list[float]],
                 notes: list[str]) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(report, notes))
    _plot(out / "report.png", history, report)
