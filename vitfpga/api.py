"""The Python API, for notebooks: the CLI's `run` and `compress` as one call.

    import vitfpga
    result = vitfpga.compile("timm:vit_tiny_patch16_224", "my_images/",
                             model_args={"img_size": 32, "patch_size": 4},
                             board="kv260", recipe={"weight_bits": 4}, quick=True)
    result.report["accuracy"], result.plan, result.out

Every argument is a key of the run configuration (README, "Configuration"); what is not given
keeps its default, and a bad value raises `vitfpga.errors.BadInput` with the CLI's one line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitfpga.config import RunConfig, check_sources, load_config
from vitfpga.errors import BadInput
from vitfpga.quant.recipe import TABLE_KEYS, CompressionRecipe
from vitfpga.rundir import RunDir
from vitfpga.tomlfile import typed_value

__all__ = ["Result", "compile"]


@dataclass(frozen=True)
class Result:
    """What a compile wrote and measured."""

    out: Path  # the run directory (config.toml, model.npz, project/, report.json, ...)
    report: dict[str, Any]  # report.json

    @property
    def plan(self) -> dict[str, Any] | None:
        """The engine plan (None when `hardware=False`)."""
        return self.report.get("plan")

    @property
    def accuracy(self) -> dict[str, float | None]:
        """Top-1 of the float, QAT, integer and (when simulated) RTL models."""
        return self.report["accuracy"]

    @property
    def project(self) -> Path | None:
        """The generated bitstream project (host-offload engine)."""
        path = self.out / RunDir.PROJECT
        return path if path.is_dir() else None


def _config(model: str, data: str | Path | None, board: str | None, model_args: Any,
            weights: str | Path | None, max_images: int | None, device: str | None,
            recipe: CompressionRecipe | dict[str, Any] | None, config: str | Path | None
            ) -> RunConfig:
    args = model_args if model_args is None or isinstance(model_args, str) else json.dumps(
        model_args)
    cfg = load_config(None if config is None else Path(config), model=model, model_args=args,
                      weights=None if weights is None else str(weights),
                      source=None if data is None else str(data), max_images=max_images,
                      device=device, board=board)
    if isinstance(recipe, dict):
        table = cfg.compress.to_table()
        for key, value in recipe.items():
            if key not in TABLE_KEYS:
                raise BadInput(f"unknown recipe key '{key}'; the keys: {', '.join(TABLE_KEYS)}")
            table[key] = typed_value(key, value, TABLE_KEYS[key])
        recipe = CompressionRecipe.from_table(table)
    if recipe is not None:
        cfg = dataclasses.replace(cfg, compress=recipe)
    check_sources(cfg)
    return cfg


def compile(model: str = "vit-digits", data: str | Path | None = None, *,
            board: str | None = None, recipe: CompressionRecipe | dict[str, Any] | None = None,
            model_args: dict[str, Any] | str | None = None, weights: str | Path | None = None,
            max_images: int | None = None, device: str | None = None,
            out: str | Path = "runs/api", force: bool = True, quick: bool = False,
            hardware: bool = True, config: str | Path | None = None) -> Result:
    """Import (or build) `model`, train it on `data` unless `weights` are given, compress it
    by `recipe`, export the integer model, and with `hardware` plan, generate and verify the
    engine for `board` (`vitfpga run`; without: `vitfpga compress`). `model`: a preset,
    "timm:NAME", "torchvision:NAME" or "package.module:factory"; `data`: an image folder or an
    .npz (None: the built-in digits)."""
    from rich.console import Console

    from vitfpga.pipeline import compress_pipeline, run_pipeline

    cfg = _config(model, data, board, model_args, weights, max_images, device, recipe, config)
    cfg = cfg.quick() if quick else cfg
    run = run_pipeline if hardware else compress_pipeline
    report = run(cfg, Path(out), force, Console())
    return Result(Path(out), report)
