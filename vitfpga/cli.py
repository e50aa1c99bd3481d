"""The `vitfpga` command. Every user error is one line on stderr and exit code 2; a verification
mismatch is exit code 1; a tool vitfpga drives failing (the QONNX exporter) is exit code 4; a bug
is exit code 3; never a traceback for any (vitfpga.errors lists them)."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from vitfpga.config import RunConfig
    from vitfpga.hls.plan.engine import ModelPlan
    from vitfpga.hls.plan.program import VitProgram
    from vitfpga.hls.plan.whole import WholeModelPlan
    from vitfpga.ir import IntLinear, IntModel

from vitfpga.errors import BadInput, VitfpgaError

__all__ = ["main"]


def _console() -> Console:
    console = Console()
    # Pipes and CI logs get 80 columns by default: too narrow for part numbers and step lines.
    return console if console.is_terminal else Console(width=120)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vitfpga")
def cli() -> None:
    """Compress a ViT until every weight fits on chip; generate and verify its FPGA engine."""


def _source_options(command: Callable[..., None]) -> Callable[..., None]:
    """The model and the data a run starts from (each overrides its config key)."""
    for decorator in reversed((
        click.option("--model", default=None, help="vit-digits (default), timm:NAME, "
                     "torchvision:NAME or package.module:factory (returns an nn.Module)."),
        click.option("--model-args", default=None, help="JSON keyword arguments for the "
                     "model, e.g. '{\"img_size\": 32, \"patch_size\": 4}'; num_classes and "
                     "in_chans follow the data unless given."),
        click.option("--weights", default=None, help="Float weights (.pt, .pth state dict or "
                     ".safetensors): the teacher, not trained again."),
        click.option("--data", default=None, help="An ImageFolder directory (class "
                     "sub-folders of PNG/JPEG) or an .npz with x and y; default: the built-in "
                     "digits."),
        click.option("--max-images", type=int, default=None,
                     help="A stratified subset of N images, for a first look."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                     help="Where training, QAT and calibration run (default auto)."),
    )):
        command = decorator(command)
    return command


def _source_overrides(model: str | None, model_args: str | None, weights: str | None,
                      data: str | None, max_images: int | None, device: str | None
                      ) -> dict[str, object]:
    """The options above as `load_config` overrides (None: not given)."""
    return {"model": model, "model_args": model_args, "weights": weights, "source": data,
            "max_images": max_images, "device": device}


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML file with run settings: [train], [data], [compress], [hardware] and "
                   "[verify] tables (README).")
@_source_options
@click.option("--board", default=None, help="Target board (see `vitfpga boards`).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/latest"),
              show_default=True, help="Output directory, written atomically.")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quick", is_flag=True, help="Same path with few epochs (tests, first look).")
def run(config_path: Path | None, model: str | None, model_args: str | None,
        weights: str | None, data: str | None, max_images: int | None, device: str | None,
        board: str | None, out: Path, force: bool, quick: bool) -> None:
    """Train, quantise, export, plan, generate and verify, end to end."""
    from vitfpga.config import check_sources, load_config
    from vitfpga.outdir import check_output_dir

    # Bad input fails here, in a second, before the heavy imports and the training.
    cfg = load_config(config_path, board=board, **_source_overrides(
        model, model_args, weights, data, max_images, device))
    check_sources(cfg)
    check_output_dir(out, force)
    from vitfpga.pipeline import run_pipeline

    run_pipeline(cfg.quick() if quick else cfg, out, force, _console())


@cli.command(name="compress")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML file with run settings: [train], [data], [compress], [hardware] and "
                   "[verify] tables (README).")
@_source_options
@click.option("--budget-kb", type=float, default=None,
              help="Search bits, rank and sparsity for the most accurate model within N KB.")
@click.option("--board", default=None,
              help="Search for the most accurate model whose engine fits this board.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/compressed"),
              show_default=True, help="Output directory, written atomically.")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--quick", is_flag=True, help="Same path with few epochs (tests, first look).")
def compress_cmd(config_path: Path | None, model: str | None, model_args: str | None,
                 weights: str | None, data: str | None, max_images: int | None,
                 device: str | None, budget_kb: float | None, board: str | None,
                 out: Path, force: bool, quick: bool) -> None:
    """Train the teacher and compress it (the config's recipe, or the best that fits)."""
    from vitfpga.config import check_sources, load_config
    from vitfpga.hls.plan.boards import get_board
    from vitfpga.outdir import check_output_dir

    if budget_kb is not None and board is not None:
        raise BadInput("give --budget-kb or --board, not both")
    if budget_kb is not None and budget_kb <= 0:
        raise BadInput(f"--budget-kb must be positive, got {budget_kb:g}")
    cfg = load_config(config_path, **_source_overrides(model, model_args, weights, data,
                                                       max_images, device))
    check_sources(cfg)
    if board is not None:
        get_board(board)
    check_output_dir(out, force)
    from vitfpga.pipeline import compress_pipeline

    compress_pipeline(cfg.quick() if quick else cfg, out, force, _console(), budget_kb, board)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--qonnx", "qonnx_path", type=click.Path(path_type=Path), required=True,
              help="QONNX file to write (the format FINN takes).")
def export(run_dir: Path, qonnx_path: Path) -> None:
    """Export a run's Brevitas model as QONNX."""
    from vitfpga.quant.checkpoint import load_student
    from vitfpga.quant.frontend import frontend_for
    from vitfpga.quant.qonnx_export import export_qonnx
    from vitfpga.rundir import RunDir

    run = RunDir(run_dir)
    run.require(RunDir.STRUCTURE, RunDir.QAT)
    # The model's shape: its frontend, with the classes and channels the run's data gave it
    # (model.npz's spec), so the run's own data and weights files need not be there any more.
    train, spec = run.config().train, run.model().spec
    frontend = frontend_for(train.model, train.model_kwargs(), num_classes=spec.num_classes,
                            in_chans=spec.in_chans, seed=train.seed)
    student, example = load_student(run / RunDir.STRUCTURE, run / RunDir.QAT, frontend.config)
    export_qonnx(student, qonnx_path, example)
    _console().print(f"{run_dir}: QONNX model in {qonnx_path}")


def _model_options(command: Callable[..., None]) -> Callable[..., None]:
    """What `plan` and `generate` both take: the model (a run or a preset) and the board."""
    for decorator in reversed((
        click.argument("run_dir", required=False, type=click.Path(path_type=Path)),
        click.option("--preset", default=None, help="Hardware-scale dimensions instead: "
                     "deit-tiny or deit-small (seeded random weights)."),
        click.option("--model", default=None, help="Or your own model: timm:NAME, "
                     "torchvision:NAME or package.module:factory, post-training quantised at "
                     "--weight-bits (calibrated on --data, else on random images)."),
        click.option("--model-args", default=None, help="JSON keyword arguments for --model."),
        click.option("--weights", default=None, help="Float weights for --model (.pt, .pth, "
                     ".safetensors)."),
        click.option("--data", default=None, help="Calibration images for --model (an image "
                     "folder or an .npz)."),
        click.option("--board", required=True, help="Target board (see `vitfpga boards`)."),
        click.option("--weight-bits", type=int, default=4, show_default=True,
                     help="Weight bits for --preset."),
        click.option("--rank", type=float, default=None, help="With --preset: factorise each "
                     "block layer as (x·U)·V of rank RANK x min(K, N) (two program entries)."),
        click.option("--codec", default="dense", show_default=True, help="With --preset: "
                     "store every layer as dense, nm:N:M (N:M sparse, compute skipped) or "
                     "codebook:K (K-bit indices into a table); the random weights are shaped "
                     "to it."),
        click.option("--max-lanes", type=int, default=None,
                     help="Most MAC lanes to consider, PE x SIMD [default: 64]; with --whole "
                     "PE x row groups x SIMD [default: the run's or config's [hardware] "
                     "whole_max_lanes, 2048 unless set]."),
        click.option("--boards-file", type=click.Path(path_type=Path), default=None,
                     help="TOML file with more boards ([boards.NAME] tables)."),
        click.option("--lut-budget", type=float, default=None,
                     help="With --whole: the share of the board's LUTs the design may take "
                     "[default: 0.70; above it, routing at the board's clock gets risky]."),
    )):
        command = decorator(command)
    return command


@dataclass(frozen=True)
class _Source:
    """What `plan` and `generate` plan: a run directory, a preset, or a user's model (the run
    configuration that names it)."""

    run_dir: Path | None = None
    preset: str | None = None
    user: RunConfig | None = None
    rank: float | None = None  # --preset only
    codec: str = "dense"  # --preset only


def _source(run_dir: Path | None, preset: str | None, model: str | None,
            model_args: str | None, weights: str | None, data: str | None,
            rank: float | None = None, codec: str = "dense") -> _Source:
    if sum(x is not None for x in (run_dir, preset, model)) != 1:
        raise BadInput("give one of: a RUN_DIR from `vitfpga run` or `vitfpga compress`, "
                       "--preset deit-tiny|deit-small, or --model (timm:NAME, ...)")
    if preset is None and (rank is not None or codec != "dense"):
        raise BadInput("--rank and --codec apply to --preset; a model's layers are planned as "
                       "they are stored")
    if model is None:
        if any(x is not None for x in (model_args, weights, data)):
            raise BadInput("--model-args, --weights and --data go with --model")
        return _Source(run_dir, preset, rank=rank, codec=codec)
    from vitfpga.config import check_sources, load_config

    user = load_config(None, model=model, model_args=model_args, weights=weights, source=data)
    check_sources(user)
    return _Source(user=user)


def _max_lanes(given: int | None, whole: bool, src: _Source) -> int:
    """--max-lanes, or its default: the engine's, or the whole-model search's (wider: the
    board's resources decide below it). A run's or a user's config may cap the whole-model
    search ([hardware] whole_max_lanes): `generate RUN --whole` then gives the run's design."""
    from vitfpga.hls.plan.engine import MAX_LANES
    from vitfpga.hls.plan.whole import WHOLE_MAX_LANES
    from vitfpga.rundir import RunDir

    if given is not None:
        return given
    if not whole:
        return MAX_LANES
    cfg = RunDir(src.run_dir).config() if src.run_dir is not None else src.user
    return WHOLE_MAX_LANES if cfg is None else cfg.hardware.whole_max_lanes


def _lut_budget(given: float | None, whole: bool) -> float:
    """--lut-budget (whole-model designs only), or the planner's."""
    from vitfpga.hls.plan.engine import LUT_BUDGET

    if given is None:
        return LUT_BUDGET
    if not whole:
        raise BadInput("--lut-budget goes with --whole (the engine alone keeps the planner's)")
    if not 0 < given <= 1:
        raise BadInput(f"--lut-budget {given:g}: a share of the board's LUTs, above 0 and at "
                       "most 1")
    return given


def _plan_model_checks(weight_bits: int, max_lanes: int) -> None:
    from vitfpga.quant.codecs import SUPPORTED_BITS

    if weight_bits not in SUPPORTED_BITS:
        raise BadInput(f"--weight-bits {weight_bits} is not supported; use one of "
                       f"{', '.join(map(str, SUPPORTED_BITS))}")
    if max_lanes < 1:
        raise BadInput("--max-lanes must be at least 1")


@functools.cache  # `generate` asks twice (the plan, then the driver's spec): import once
def _int_model(src: _Source, weight_bits: int) -> tuple[IntModel, str]:
    """A run's or a user's whole integer model, and its description."""
    from vitfpga.sources import run_int_model, user_int_model

    if src.user is not None:
        with _console().status(f"{src.user.train.model}: import, post-training quantisation "
                               f"..."):
            return user_int_model(src.user, weight_bits)
    model, _, _, label = run_int_model(src.run_dir)
    return model, label


def _plan_model(src: _Source, board: str, weight_bits: int, max_lanes: int,
                boards_file: Path | None) -> tuple[dict[str, IntLinear], ModelPlan, str]:
    from vitfpga.hardware_steps import plan as plan_engine
    from vitfpga.hls.plan.boards import get_board, register_boards_file
    from vitfpga.sources import preset_layers

    _plan_model_checks(weight_bits, max_lanes)
    register_boards_file(boards_file)
    target = get_board(board)
    if src.preset is not None:
        layers, rows, label = preset_layers(src.preset, weight_bits, rank=src.rank,
                                            codec=src.codec)
    else:
        model, label = _int_model(src, weight_bits)
        layers, rows = model.layers, model.rows()
    # The run's own plan stage, on the model the run saved (or a preset's layers).
    return layers, plan_engine(layers, rows, target, max_lanes=max_lanes), label


@cli.command()
@_model_options
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the plan as JSON here.")
@click.option("--whole", is_flag=True, help="Plan the whole-model design instead (every op on "
              "chip, image in, logits out): the fastest folding whose engine, weights and "
              "activation memories all fit BOARD.")
def plan(run_dir: Path | None, preset: str | None, model: str | None, model_args: str | None,
         weights: str | None, data: str | None, board: str, weight_bits: int,
         rank: float | None, codec: str, max_lanes: int | None, boards_file: Path | None,
         lut_budget: float | None, json_out: Path | None, whole: bool) -> None:
    """Fold every linear layer onto one engine for BOARD and print the plan."""
    src = _source(run_dir, preset, model, model_args, weights, data, rank, codec)
    max_lanes = _max_lanes(max_lanes, whole, src)
    budget = _lut_budget(lut_budget, whole)
    if whole:
        _plan_whole(src, board, weight_bits, max_lanes, boards_file, json_out, budget)
        return
    _, result, label = _plan_model(src, board, weight_bits, max_lanes, boards_file)
    console = _console()
    for table in _plan_tables(result, label):
        console.print(table)
    if json_out is not None:
        json_out.write_text(result.to_json())


def _plan_whole(src: _Source, board: str, weight_bits: int, max_lanes: int,
                boards_file: Path | None, json_out: Path | None, lut_budget: float) -> None:
    import json

    _, engine, _, w, label = _whole_design(src, board, weight_bits, max_lanes, boards_file,
                                           lut_budget)
    _console().print(_whole_table(w, label))
    if json_out is not None:
        json_out.write_text(json.dumps({"engine": json.loads(engine.to_json()),
                                        "whole_model": w.to_json()}, indent=1) + "\n")


def _whole_design(src: _Source, board: str, weight_bits: int, max_lanes: int,
                  boards_file: Path | None, lut_budget: float
                  ) -> tuple[IntModel, ModelPlan, VitProgram, WholeModelPlan, str]:
    """(integer model, engine plan, op program, whole-model plan, description): the fastest
    whole design that fits the board (`plan --whole`, `generate --whole`)."""
    from vitfpga.hls.plan.boards import get_board, register_boards_file
    from vitfpga.sources import preset_int_model
    from vitfpga.whole_steps import whole_design

    if src.rank is not None:
        raise BadInput("--whole does not take --rank yet: low-rank preset layers need a "
                       "requantising hop, which only the host-offload design runs")
    _plan_model_checks(weight_bits, max_lanes)
    register_boards_file(boards_file)
    target = get_board(board)
    if src.preset is None:
        model, label = _int_model(src, weight_bits)
    with _console().status(f"whole model on {target.name}: every folding up to {max_lanes} "
                           f"lanes ..."):
        if src.preset is not None:
            model, _, _, label = preset_int_model(src.preset, weight_bits, codec=src.codec)
        engine, prog, w = whole_design(model, model.layers, model.rows(), target, max_lanes,
                                       lut_budget)
    return model, engine, prog, w, label


def _whole_table(w: WholeModelPlan, label: str) -> Table:
    from vitfpga.hls.plan.engine import folding_label

    table = Table(title=f"{label}: whole model on {w.board}, "
                        f"{folding_label(w.pe, w.simd, w.groups)}, "
                        f"LayerNorm {w.ln_lanes} lanes, softmax {w.sm_lanes}",
                  show_header=False,
                  caption="ideal: a lower bound, one op at a time at its slowest unit's rate; "
                          "by unit: the ops each unit bounds (docs/vit.md, Cycles)")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [(f"  {unit}", f"{cycles:,}") for unit, cycles in w.ideal_by_unit.items()]
    for what, value in (
        ("cycles per image (ideal, lower bound)", f"{w.ideal_cycles_per_image:,}"), *rows,
        (f"images/s at {w.clock_mhz:g} MHz", f"{w.ideal_images_per_s:,.1f}"),
        ("GOPS (2 a multiply-accumulate)", f"{w.ideal_gops:,.1f}"),
        ("PS-PL bytes per image", f"{w.ps_pl_bytes_per_image:,}"),
        ("  host-offload design", f"{w.host_offload_ps_pl_bytes_per_image:,}"),
        ("activations on chip (XM + BM)", f"{w.activation_bytes:,} B"),
        ("BRAM36 / URAM (all memories)", f"{w.bram36:g} / {w.uram}"),
        ("  activations", f"{w.activation_bram36:g} / {w.activation_uram}"),
        ("  out of block RAM", ", ".join(f"{k} ({v})" for k, v in w.styles.items()) or "none"),
        ("DSP / LUT (estimate)", f"{w.dsp:,} / {w.lut:,}"),
        ("weight layers' rows", "in pairs (two a weight word)" if w.pairs else "one a pass"),
    ):
        table.add_row(what, value)
    return table


@cli.command()
@_model_options
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Project directory to write (atomically).")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--from-hls", is_flag=True, help="Build the bitstream from the Vitis HLS IP "
              "(`make hls` first) instead of the emitted Verilog.")
@click.option("--whole", is_flag=True, help="The whole-model design instead (every op on chip, "
              "image in, logits out): the folding `plan --whole` picks.")
def generate(run_dir: Path | None, preset: str | None, model: str | None,
             model_args: str | None, weights: str | None, data: str | None, board: str,
             weight_bits: int, rank: float | None, codec: str, max_lanes: int | None,
             boards_file: Path | None, lut_budget: float | None, out: Path, force: bool,
             from_hls: bool, whole: bool) -> None:
    """Plan for BOARD and write the project: HLS C++, Verilog, Vivado and Vitis TCL, the PYNQ
    driver package, a Makefile (bitstream, hls, deploy) and a README."""
    from vitfpga.hardware_steps import generate as generate_project
    from vitfpga.hls.emit.project import WholeModel
    from vitfpga.hls.plan.boards import get_board
    from vitfpga.outdir import atomic_output_dir, check_output_dir
    from vitfpga.sources import model_driver_source, preset_driver_source, run_driver_source

    src = _source(run_dir, preset, model, model_args, weights, data, rank, codec)
    max_lanes = _max_lanes(max_lanes, whole, src)
    budget = _lut_budget(lut_budget, whole)
    check_output_dir(out, force)
    design: WholeModel | None = None
    int_model: IntModel | None = None
    if whole:
        int_model, result, prog, wplan, label = _whole_design(
            src, board, weight_bits, max_lanes, boards_file, budget)
        layers = int_model.layers
        design = WholeModel(prog, wplan)
    else:
        layers, result, label = _plan_model(src, board, weight_bits, max_lanes, boards_file)
    if src.run_dir is not None:
        source = run_driver_source(src.run_dir)
    elif src.preset is not None:  # untrained: a whole-model package ships the model whole
        source = preset_driver_source(src.preset, int_model)
    else:
        source = model_driver_source(src.user.train.model,
                                     int_model or _int_model(src, weight_bits)[0],
                                     whole=int_model is not None)
    with atomic_output_dir(out, force) as tmp:
        files = generate_project(result, layers, tmp, get_board(board), source,
                                 from_hls=from_hls, whole=design)
    what = "whole model" if whole else "engine"
    from vitfpga.hls.plan.engine import folding_label

    _console().print(f"{label}: {what} {folding_label(result.pe, result.simd, result.groups)} "
                     f"on {result.board}, "
                     f"{len(files)} files in {out}; next: `make -C {out} bitstream`")


@cli.command()
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory to write the archive and its manifest into (atomically).")
@click.option("--force", is_flag=True, help="Replace --out if it exists and is not empty.")
@click.option("--require-bitstream", is_flag=True,
              help="Refuse unless `make bitstream` has produced the .bit and .hwh.")
def deploy(project: Path, out: Path, force: bool, require_bitstream: bool) -> None:
    """Bundle what goes on the board (driver, integer model, test images, bitstream) from a
    generated PROJECT (or a run directory) into one archive with a manifest and checksums."""
    from vitfpga.deploy import bundle_project
    from vitfpga.outdir import check_output_dir

    check_output_dir(out, force)
    bundle = bundle_project(project, out, force, require_bitstream)
    bit = bundle.manifest["bitstream"]
    assert isinstance(bit, dict)
    state = "with its bitstream" if bit["present"] else (
        f"WITHOUT a bitstream (build it with `make bitstream`; it belongs at {bit['path']})")
    files = bundle.manifest["files"]
    assert isinstance(files, dict)
    _console().print(f"{bundle.archive}: {len(files)} files {state}; on the board: unpack, "
                     f"`pip3 install --no-build-isolation --no-deps .`, "
                     f"`python3 run_on_board.py`")


@cli.command(name="board-sim")
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; several boards can run on 127.0.0.2, 127.0.0.3, ...")
@click.option("--port", type=int, default=7967, show_default=True,
              help="gRPC port (pynq's client always dials 7967; the self-test takes --port).")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator",
              show_default=True, help="Simulator running the project's RTL.")
def board_sim(project: Path, host: str, port: int, sim: str) -> None:
    """A simulated board for a generated PROJECT that speaks PYNQ.remote: point the real pynq
    client at it (PYNQ_REMOTE_DEVICES=HOST) and load the overlay files it writes. Ctrl-C stops."""
    from vitfpga.deploy import find_project
    from vitfpga.sim.board_sim import BoardSim

    project = find_project(project)
    console = _console()
    sim_board = BoardSim(project, host=host, port=port, sim=sim, log=console.print)
    console.print(f"board-sim: building the {sim} simulation of {project / 'rtl'} ...")
    with sim_board as server:
        console.print(
            f"board-sim: {server.board.spec.design} on a simulated {server.board.spec.board}, "
            f"serving PYNQ.remote on {host}:{port}\n"
            f"  export PYNQ_REMOTE_DEVICES={host}\n"
            f"  overlay: {server.bit} (with {server.hwh.name if server.hwh else ''} beside it)\n"
            f"  driver:  Accelerator(bitfile=\"{server.bit}\")\n"
            f"  check:   python -m pynq.remote.selftest --ip {host} --port {port} "
            f"--bitstream {server.bit}", markup=False, highlight=False)
        how = server.wait()
        console.print(f"board-sim: stopped ({how})")


@cli.command()
@click.argument("project", type=click.Path(path_type=Path))
def check(project: Path) -> None:
    """Static checks of a generated PROJECT (or a run directory's project/) without the vendor
    tools: its Vivado and Vitis HLS TCL run under tclsh with stubbed commands and are checked
    against plan.json, system.json and the driver's hw.json. Exit 1 names each failure."""
    from vitfpga.errors import VerificationFailed
    from vitfpga.project_check import check_project

    records, checks = check_project(project)
    table = Table(title=f"{records.root}: {records.spec.design} ({records.spec.top}) on "
                        f"{records.spec.board}")
    table.add_column("check")
    table.add_column("result")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else f"[red]{len(c.problems)} problem(s)[/]")
    console = _console()
    console.print(table)
    failed = [c for c in checks if not c.ok]
    for c in failed:
        for problem in c.problems:
            console.print(f"FAIL {c.name}: {problem}", markup=False, highlight=False,
                          soft_wrap=True)
    if failed:
        raise VerificationFailed(f"{sum(len(c.problems) for c in failed)} problem(s) in "
                                 f"{len(failed)} of {len(checks)} checks of {records.root}")
    console.print(f"all {len(checks)} checks passed; next: `make -C {records.root} bitstream`",
                  markup=False, highlight=False)


def _plan_tables(p: ModelPlan, label: str) -> tuple[Table, Table]:
    layers = Table(title=f"{label}: one engine, PE={p.pe} x SIMD={p.simd}", show_footer=True,
                   caption="M = rows per image; cycles are ideal: M x NF x SF, SF = ceil(K/SIMD) "
                           "(ceil(K/(R*SIMD)) for N:M, R = M/N)")
    for col, footer in (("layer", "total"), ("K", ""), ("N", ""), ("M", ""), ("codec", ""),
                        ("bits", ""), ("weight words", f"{p.weight_depth:,}"),
                        ("cycles", f"{p.cycles_per_image:,}")):
        layers.add_column(col, footer=footer,
                          justify="left" if col in ("layer", "codec") else "right")
    for s in p.layers:
        layers.add_row(s.name, str(s.k), str(s.n), str(s.rows), s.codec, str(s.bits),
                       f"{s.words:,}", f"{s.ideal_cycles(s.rows):,}")
    totals = Table(title=f"{p.board} ({p.part})", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    for what, value in (
        ("weight memory", f"{p.weight_depth:,} words x {p.word_bits} bits "
                          f"({p.pe * p.simd} lanes of {p.lane_bits})"),
        ("  in the bitstream ROM", f"{p.rom_depth:,} words, {p.weight_bram36:g} BRAM36"),
        ("  in URAM, loaded at start-up", f"{p.ram_depth:,} words, {p.uram} URAM"),
        ("BRAM36 / URAM (all memories)", f"{p.bram36:g} / {p.uram}"),
        ("weight memory efficiency", f"{p.bram_efficiency:.1%}"),
        ("DSP / LUT (estimate)", f"{p.dsp:,} / {p.lut:,}"),
        ("cycles per image (ideal)", f"{p.cycles_per_image:,}"),
        ("MAC utilisation", f"{p.mac_utilisation:.1%}"),
        (f"images/s at {p.clock_mhz:g} MHz", f"{p.clock_mhz * 1e6 / p.cycles_per_image:,.1f}"),
    ):
        totals.add_row(what, value)
    return layers, totals


@cli.command()
@click.option("--boards-file", type=click.Path(path_type=Path), default=None,
              help="TOML file with more boards ([boards.NAME] tables).")
def boards(boards_file: Path | None) -> None:
    """List the known boards and their resources."""
    from vitfpga.hls.plan.boards import BOARDS, register_boards_file

    register_boards_file(boards_file)

    table = Table(title="Boards (vendor data sheets)")
    for col in ("board", "part", "LUT", "FF", "BRAM36", "URAM", "DSP", "clock MHz"):
        table.add_column(col, justify="left" if col in ("board", "part") else "right")
    for b in BOARDS.values():
        table.add_row(b.name, b.part, f"{b.lut:,}", f"{b.ff:,}", str(b.bram36), str(b.uram),
                      f"{b.dsp:,}", f"{b.clock_mhz:g}")
    _console().print(table)


def main(argv: list[str] | None = None) -> int:
    def err(message: str) -> None:
        click.echo(f"vitfpga: {message}", err=True)  # one line, however narrow the terminal

    # Brevitas warns on import about an optional CUDA kernel package we never use.
    warnings.filterwarnings("ignore", message="fast_hadamard_transform")
    try:
        cli.main(args=argv, prog_name="vitfpga", standalone_mode=False)
    except click.exceptions.Abort:
        err("interrupted; no output directory was written")
        return 130
    except click.ClickException as e:
        err(e.format_message())
        return 2
    except VitfpgaError as e:
        err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        err("interrupted; no output directory was written")
        return 130
    except Exception as e:  # a bug, not bad input: one line, the traceback on request
        if os.environ.get("VITFPGA_DEBUG"):
            raise
        err(f"internal error: {type(e).__name__}: {e} (set VITFPGA_DEBUG=1 for the traceback)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
