"""report.json (machine-readable, design.md §9), report.md and its plot, for people."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from vitfpga.hls.plan.engine import ModelPlan, folding_label
from vitfpga.rundir import RunDir

__all__ = ["WHOLE", "machine_info", "write_report"]

WHOLE = "whole-model"  # the verification row of the whole ViT in RTL, beside per-layer rows


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


def _verification_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per layer, one column per target: mismatches of compared values, and the
    cycles each RTL simulator measured against the ideal rows x NF x SF."""
    targets = list(dict.fromkeys(v["target"] for v in rows))
    by_layer: dict[str, dict[str, dict[str, Any]]] = {}
    for v in rows:
        by_layer.setdefault(v["layer"], {})[v["target"]] = v
    lines = ["## Verification (bit-exact against the integer golden)", "",
             "Cells: mismatches / values compared; for RTL, measured clock cycles (ideal).", "",
             "| layer | " + " | ".join(targets) + " |", "|---|" + "---|" * len(targets)]
    for layer, results in by_layer.items():
        cells = []
        for t in targets:
            v = results.get(t)
            if v is None:
                cells.append("—")
                continue
            cell = f"{v['mismatches']} / {v['compared']}"
            if v["cycles"] is not None:
                cell += f"; {v['cycles']} ({v['ideal_cycles']})"
            cells.append(cell)
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _resource_lines(res: dict[str, Any] | None) -> list[str]:
    if not res:
        return []
    plan, y = res["planner"], res["yosys"]
    lines = ["## Resources: planner vs Yosys synth_xilinx", "",
             f"Yosys `synth_xilinx -family {y['family']}` on the emitted Verilog "
             f"({y['seconds']:g} s); the planner's LUT figure is an estimate.", "",
             "| | BRAM36 | URAM | DSP | LUT | FF |", "|---|---|---|---|---|---|",
             f"| planner | {plan['bram36']:g} | {plan['uram']} | {plan['dsp']} | {plan['lut']} "
             f"| — |",
             f"| Yosys | {y['bram36']:g} | {y['uram']} | {y['dsp']} | {y['lut']} "
             f"({y['lutram']} as RAM) | {y['ff']} |"]
    return [*lines, ""]


def _hil_lines(hil: dict[str, Any] | None) -> list[str]:
    if not hil:
        return []
    verdict = "identical to" if hil["logits_identical"] else "DIFFERENT from"
    return ["## Hardware in the loop", "",
            f"{hil['images']} test images, every linear layer on the {hil['simulator']} "
            f"simulation of the engine ({hil['engine_runs']} engine runs), everything else on "
            f"the host from the golden code: logits {verdict} the golden. "
            f"{hil['cycles_per_image']:,} cycles per image measured, "
            f"{hil['ideal_cycles'] / hil['images']:,.0f} ideal.", ""]


# Published whole-ViT FPGA results to read ours against (the devices are part of the figure).
PUBLISHED_ANCHORS = ("Quasar-ViT, 101-252 images/s on a ZCU102 (xczu9eg); HG-PIPE, 7,118 "
                     "images/s on a VCK190 (Versal xcvc1902)")


def _whole_lines(w: dict[str, Any] | None) -> list[str]:
    """The whole-model design beside the host-offload design it grew from (docs/vit.md)."""
    if not w:
        return []
    if "skipped" in w:
        return ["## Whole model in RTL", "", f"Not run: {w['skipped']}.", ""]
    off, plan = w["host_offload"], w["plan"]
    verdict = ("identical to" if w["logits_identical"]
               else f"DIFFERENT from ({w['mismatches']} values)")
    clock = plan["clock_mhz"]

    def resources(res: dict[str, Any]) -> tuple[str, str]:
        p, y = res["planner"], res["yosys"]
        planned = f"{p['bram36']:g} / {p['uram']} / {p['dsp']} / ~{p['lut']:,}"
        synth = ("not run" if y is None else
                 f"{y['bram36']:g} / {y['uram']} / {y['dsp']} / {y['lut']:,} (FF {y['ff']:,})")
        return planned, synth

    (w_plan, w_synth), (o_plan, o_synth) = resources(w["resources"]), resources(off["resources"])
    ideal = plan["ideal_by_unit"]
    total = sum(ideal.values())
    macs = plan.get("macs_per_image")  # absent in reports of older versions
    gops = f" ({2 * macs * w['images_per_s'] / 1e9:,.2f} GOPS)" if macs else ""
    lines = [
        "## Whole model in RTL (every op on chip)", "",
        f"{w['images']} test images through `vitfpga_vit` on {w['simulator']}, patches in, "
        f"logits out: every logit {verdict} the golden. Measured cycles are the cycles "
        f"register, start to done; the ideal is a lower bound: ops run one at a time, each "
        f"for its slowest unit's throughput bound (the units of one op, such as Q·Kᵀ and its "
        f"softmax, overlap).", "",
        "| per image | host offload (engine on chip, the rest on the ARM) | whole model on "
        "chip |", "|---|---|---|",
        f"| engine folding | PE {off['pe']} x SIMD {off['simd']} | "
        f"{folding_label(plan['pe'], plan['simd'], plan.get('groups', 1))}, LayerNorm "
        f"{plan.get('ln_lanes', 1)} lanes, softmax "
        f"{plan.get('sm_lanes', plan['pe'])} |",
        f"| clock cycles | {off['engine_cycles_per_image']:,.0f} (engine only; host ops on top) | "
        f"{w['cycles_per_image']:,.0f} measured, {w['ideal_cycles_per_image']:,} ideal (lower "
        f"bound) "
        f"({w['cycles_vs_ideal']:.3f}x) |",
        f"| images/s at {clock:g} MHz (a plan: no place-and-route) | at most "
        f"{off['engine_images_per_s_bound']:,.0f} (engine bound) | {w['images_per_s']:,.0f}"
        f"{gops} |",
        f"| bytes across PS-PL | {off['ps_pl_bytes_per_image']:,} | "
        f"{w['ps_pl_bytes_per_image']:,} ({w['ps_pl_reduction']:g}x less) |",
        f"| planner BRAM36 / URAM / DSP / LUT | {o_plan} | {w_plan} |",
        f"| Yosys BRAM36 / URAM / DSP / LUT | {o_synth} | {w_synth} |", "",
        "| unit | ideal cycles per image (ops it bounds) | share |", "|---|---|---|",
        *[f"| {unit} | {c:,} | {c / total:.1%} |" for unit, c in ideal.items()], "",
        f"For scale, published edge ViT accelerators: {PUBLISHED_ANCHORS}. Logic depth against "
        f"the clock: `benchmarks/logic_depth.py` (docs/vit.md, Timing).", "",
        "![whole-model cycles](whole_model.png)", ""]
    return lines


def _size_lines(r: dict[str, Any]) -> list[str]:
    z = r["size"]
    lines = ["## Size (real bits)", "",
             "| | fp32 | stored | ratio |", "|---|---|---|---|",
             f"| linear weights | {z['fp32_weight_bytes']:,} B | {z['weight_bytes']:,} B | "
             f"{z['weight_ratio']:.1f}x |",
             f"| whole model (+ {z['table_bytes']:,} B bias/requant tables, "
             f"{z['host_bytes']:,} B host parameters) | {z['fp32_bytes']:,} B | "
             f"{z['compressed_bytes']:,} B | {z['ratio']:.1f}x |", ""]
    if z.get("onchip_weight_bits"):
        lines += [f"On chip the encoded weights take {z['onchip_weight_bits']:,} bits of weight "
                  f"memory ({z['onchip_weight_bits'] / z['counted_weight_bits']:.2f}x the "
                  f"{z['counted_weight_bits']:,} counted), before block RAM fragmentation.", ""]
    search = r.get("search")
    if search:
        lines += ["## Search", "", f"Chosen: {search['chosen']}.", "",
                  "| candidate | family | KB | fits | validation top-1 |", "|---|---|---|---|---|"]
        lines += [f"| {c['label']} | {c['family']} | {c['kb']:.1f} | "
                  f"{'yes' if c['fits'] else 'no: ' + c['why']} | {_pct(c['val_accuracy'])} |"
                  for c in search["candidates"]]
        lines.append("")
    return lines


def plan_json(p: ModelPlan) -> dict[str, Any]:
    """report.json's plan: the folding, its resources and speed, and per layer its codec, the
    bits its stream stores and its share of the weight memory's primitives (block RAM, URAM)."""
    capacity = p.weight_depth * p.word_bits / p.bram_efficiency  # bits of the primitives
    share = capacity / (p.weight_depth * p.word_bits)
    layers = [{"name": s.name, "codec": s.codec, "weight_bits": s.bits, "k": s.k, "n": s.n,
               "w_base": s.w_base, "words": s.words, "stored_bits": s.words * p.word_bits,
               "memory_bits": round(s.words * p.word_bits * share),
               "cycles_per_image": s.ideal_cycles(s.rows)} for s in p.layers]
    return {
        "board": p.board, "pe": p.pe, "simd": p.simd, "weight_bits": p.weight_bits,
        "lane_bits": p.lane_bits, "nm": list(p.nm), "codebook_bits": p.codebook_bits,
        "layers": layers, "onchip_weight_bits": p.onchip_weight_bits, "bram36": p.bram36,
        "uram": p.uram, "dsp": p.dsp, "lut": p.lut, "bram_efficiency": p.bram_efficiency,
        "cycles_per_image": p.cycles_per_image, "clock_mhz": p.clock_mhz,
        "mac_utilisation": round(p.mac_utilisation, 4),
        "images_per_s": round(p.clock_mhz * 1e6 / p.cycles_per_image, 1)}


def _plan_lines(plan: dict[str, Any] | None) -> list[str]:
    if not plan:
        return []
    return [
        "## Plan: one engine for every linear layer", "",
        "| board | layers | PE | SIMD | weight bits | BRAM36 | URAM | DSP | LUT (est.) | "
        "BRAM eff. | MAC util. | cycles/image | images/s | clock |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {plan['board']} | {len(plan['layers'])} | {plan['pe']} | {plan['simd']} | "
        f"{plan['weight_bits']} | {plan['bram36']:g} | {plan['uram']} | {plan['dsp']} | "
        f"{plan['lut']} | {plan['bram_efficiency']:.1%} | {plan['mac_utilisation']:.1%} | "
        f"{plan['cycles_per_image']} | {plan['images_per_s']:g} | {plan['clock_mhz']:g} MHz |",
        "", "| layer | codec | weight bits | stored bits | memory bits (primitives) | "
        "cycles/image |", "|---|---|---|---|---|---|",
        *[f"| {s['name']} | {s['codec']} | {s['weight_bits']} | {s['stored_bits']:,} | "
          f"{s['memory_bits']:,} | {s['cycles_per_image']:,} |" for s in plan["layers"]], ""]


def _source_lines(r: dict[str, Any]) -> list[str]:
    """The model and the data, and how faithfully the model was imported."""
    data, imp = r["data"], r.get("import")
    lines = [f"Model {r['config']['train']['model']}; data {data['source']} "
             f"({data['train_images']} train, {data['test_images']} test images, "
             f"{data['classes']} classes).", ""]
    if imp:
        lines += [f"Import check: vitfpga's float model reproduces the PyTorch module to "
                  f"max |Δ logits| {imp['max_abs_diff']:.3g} over a logit range of "
                  f"{imp['logit_range']:.3g} ({imp['relative']:.1e} of it; target 1e-4) on "
                  f"{imp['images']} calibration images.", ""]
    return lines


def _markdown(r: dict[str, Any], notes: list[str]) -> str:
    acc = r["accuracy"]
    hil, whole = r.get("hil"), r.get("whole_model")
    rtl_rows = []
    if hil:
        rtl_rows.append(f"| host-offload engine in the loop (first {hil['images']} test images;"
                        f" integer golden on them: {_pct(hil['integer_accuracy'])}) | "
                        f"{_pct(hil.get('rtl_accuracy'))} |")
    if whole and "images" in whole:
        rtl_rows.append(f"| whole-model RTL (first {whole['images']} test images) | "
                        f"{_pct(acc['rtl'])} |")
    lines = [
        "# vitfpga run report", "",
        *_source_lines(r),
        f"## Accuracy (top-1, the test split: {r['data']['test_images']} images)", "",
        "| model | top-1 |", "|---|---|",
        f"| float teacher | {_pct(acc['float'])} |",
        f"| Brevitas QAT (fake-quant) | {_pct(acc['qat'])} |",
        f"| integer-only golden | {_pct(acc['integer'])} |",
        *(rtl_rows or [f"| RTL | {_pct(acc['rtl'])} |"]), "",
        f"Top-1 agreement: QAT vs integer golden {_pct(r['agreement_qat_integer'])}; QAT vs "
        f"float teacher {_pct(r['agreement_qat_float'])}; integer golden vs the PyTorch model "
        f"{_pct(r['agreement_with_pytorch'])}.", "",
        *_size_lines(r),
        *_plan_lines(r.get("plan")),
        *_resource_lines(r.get("resources")),
        *_verification_table(r["verification"]),
        *_hil_lines(r.get("hil")),
        *_whole_lines(whole),
    ]
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
    target = next((v["target"] for v in r["verification"]
                   if v["cycles"] is not None and v["layer"] != WHOLE), None)
    rows = [v for v in r["verification"] if v["target"] == target and v["layer"] != WHOLE]
    xs = range(len(rows))
    ax2.bar([i - 0.2 for i in xs], [v["ideal_cycles"] for v in rows], 0.4, label="ideal")
    ax2.bar([i + 0.2 for i in xs], [v["cycles"] for v in rows], 0.4, label="measured")
    ax2.set_xticks(list(xs), [v["layer"].replace("blocks.", "b").replace("attn.", "")
                              .replace("mlp.", "") for v in rows], rotation=60, fontsize=7)
    ax2.set_ylabel("clock cycles")
    ideal = sum(v["ideal_cycles"] for v in rows)
    measured = sum(v["cycles"] for v in rows) or 1
    ax2.set_title(f"RTL cycles per layer ({target}): {ideal / measured:.1%} MAC util."
                  if rows else "no RTL cycles measured")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _plot_whole(path: Path, w: dict[str, Any]) -> None:
    """Where the whole model's cycles go (ideal by unit, beside the measured total), and what
    crosses PS-PL per image in each design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4),
                                   gridspec_kw={"width_ratios": [2, 1]})
    bottom = 0
    for unit, cycles in w["plan"]["ideal_by_unit"].items():
        ax1.bar(0, cycles, 0.5, bottom=bottom, label=unit)
        bottom += cycles
    ax1.bar(1, w["cycles_per_image"], 0.5, color="0.4")
    ax1.set_xticks([0, 1], ["ideal (lower bound)", "measured (RTL)"])
    ax1.set_ylabel("clock cycles per image")
    ax1.set_title(f"Whole model: {w['cycles_vs_ideal']:.3f}x the ideal")
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    crossing = [w["host_offload"]["ps_pl_bytes_per_image"], w["ps_pl_bytes_per_image"]]
    ax2.bar([0, 1], crossing, 0.5, color=["tab:red", "tab:green"])
    ax2.set_yscale("log")
    ax2.set_xticks([0, 1], ["host offload", "whole model"])
    ax2.set_ylabel("bytes across PS-PL per image")
    ax2.set_title(f"{w['ps_pl_reduction']:g}x less traffic")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_report(out: RunDir, report: dict[str, Any], history: dict[str, list[float]],
                 notes: list[str]) -> None:
    (out / RunDir.REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    (out / RunDir.REPORT_MD).write_text(_markdown(report, notes))
    _plot(out / RunDir.REPORT_PNG, history, report)
    whole = report.get("whole_model")
    if whole and "skipped" not in whole:
        _plot_whole(out / RunDir.WHOLE_PNG, whole)
