"""Shared test helpers: seeded random integer layers and hand-folded engine plans."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.ir import IntLinear, IntModel
from vitfpga.quant.synthetic import random_layer, random_rows

__all__ = ["Design", "digits_like", "hand_model_plan", "random_layer", "random_rows", "session_dir",
           "sim_params", "small_int_model"]


# Property tests draw the same examples on every run, so a red CI run is reproducible and never
# a fresh draw's bad luck; HYPOTHESIS_PROFILE=explore draws new ones (do that when changing the
# arithmetic).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class Design:
    """An emitted engine and the jobs (layer, input rows, golden outputs) to check it with."""

    layers: dict[str, IntLinear]
    plan: ModelPlan
    rtl_dir: Path
    build_dir: Path
    jobs: list[tuple[str, np.ndarray, np.ndarray]]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked with a tool (pyproject markers) when that tool cannot run here, with
    the probe's reason: a missing tool is a skip that says why, never a pass."""
    from vitfpga.sim import tools

    for tool in tools.MARKERS:
        if item.get_closest_marker(tool) is not None and (reason := tools.status(tool)):
            pytest.skip(f"{tool}: {reason}")


def session_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory every pytest-xdist worker of this session shares (the session's base temp
    holds one base temp per worker), or this process's own when not distributed."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / name
        path.mkdir(exist_ok=True)
        return path
    return tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session", autouse=True)
def shared_sim_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """One RTL build per distinct design for the whole session, across workers (sim.rtl's
    content-keyed cache, whose entries are built aside and renamed in): the quick run, the tests
    that regenerate its projects and the sim tests build many identical designs, and a
    Verilator build is most of a small simulation. Subprocesses (`vitfpga run`) inherit the
    variable. A cache the caller already set is kept."""
    from vitfpga.sim.rtl import CACHE_ENV

    if os.environ.get(CACHE_ENV):
        yield None
        return
    with pytest.MonkeyPatch.context() as mp:
        cache_dir = session_dir(tmp_path_factory, "sim-cache")
        mp.setenv(CACHE_ENV, str(cache_dir))
        yield cache_dir


def sim_params(*sims: str) -> list:
    """RTL simulators as `sim` parameters, each carrying its tool's marker (default: both)."""
    return [pytest.param(s, marks=getattr(pytest.mark, s)) for s in sims or ("icarus",
                                                                             "verilator")]


def hand_model_plan(layers: dict[str, IntLinear], pe: int, simd: int,
                    rows: int = 4) -> ModelPlan:
    """A whole-model plan on pynq-z2 with a chosen folding; every layer sees `rows` rows."""
    return fixed_plan(layers, dict.fromkeys(layers, rows), get_board("pynq-z2"), pe, simd)


@cache
def digits_like(blocks: int = 3) -> tuple[dict[str, IntLinear], dict[str, int]]:
    """A small ViT's linear layers on 8x8 digits (seeded random weights) and rows per image."""
    dims = [("patch_embed", 4, 32, 16)]
    for b in range(blocks):
        dims += [(f"blocks.{b}.attn.qkv", 32, 96, 17), (f"blocks.{b}.attn.proj", 32, 32, 17),
                 (f"blocks.{b}.mlp.fc1", 32, 64, 17), (f"blocks.{b}.mlp.fc2", 64, 32, 17)]
    dims.append(("head", 32, 10, 1))
    layers = {name: random_layer(k, n, seed=i, name=name) for i, (name, k, n, _) in enumerate(dims)}
    return layers, {name: rows for name, _, _, rows in dims}


def small_int_model(bits: int = 4, seed: int = 0) -> IntModel:
    """A valid whole integer model of vit-digits' shapes in a second, without training: seeded
    random intB layers, the rest calibrated on an untrained float ViT with random images."""
    import torch

    from vitfpga.quant.intvit import calibrate_int_vit
    from vitfpga.quant.model import PRESETS, ViT
    from vitfpga.quant.structure import dense_structure
    from vitfpga.quant.synthetic import structure_layers

    cfg = PRESETS["vit-digits"]
    layers, _ = structure_layers(dense_structure(cfg, bits), cfg, seed)
    torch.manual_seed(seed)
    images = torch.randn(8, cfg.in_chans, cfg.image_size, cfg.image_size)
    return calibrate_int_vit(ViT(cfg), layers, images)
