"""The recipes shipped in configs/ stay valid as the config grows."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitfpga.config import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.qat_epochs >= 1  # loading validated it; a recipe must also train


def test_there_are_shipped_configs() -> None:
    assert CONFIGS
