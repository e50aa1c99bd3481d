"""The recipes shipped in configs/ stay valid as the config grows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vitfpga.config import RunConfig, load_config
from vitfpga.errors import BadInput
from vitfpga.quant.recipe import CompressionRecipe, Prune

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.compress.qat_epochs >= 1  # loading validated it; a recipe must also train


def test_there_are_shipped_configs() -> None:
    assert CONFIGS


def test_tables_parse_once_and_the_report_form_gives_the_config_back(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[train]\nseed = 3\n[compress]\nweight_bits = 3\nlayer_bits = ["head=8"]\n'
                    'prune = "nm"\nprune_nm = "1:4"\nshared_rank = 6\n'
                    'shared_type_ranks = ["fc1=8"]\n[hardware]\nsynth = false\n'
                    '[verify]\nsimulators = ["csim"]\n')
    cfg = load_config(path, board="kv260")
    recipe = cfg.compress
    assert (recipe.layer_bits, recipe.prune, recipe.prune_nm) == ((("head", 8),), Prune.NM, (1, 4))
    assert recipe.ranks == {"qkv": 6, "proj": 6, "fc1": 8, "fc2": 6}
    assert (cfg.train.seed, cfg.hardware.board, cfg.hardware.synth) == (3, "kv260", False)
    tables = cfg.to_json()
    assert list(tables) == ["train", "data", "compress", "hardware", "verify"]
    assert tables["compress"]["shared_type_ranks"] == ["fc1=8"]
    assert CompressionRecipe.from_table(tables["compress"]) == recipe
    assert recipe.label == "int3, 1:4 sparse, shared decoders rank qkv 6, proj 6, fc1 8, fc2 6"


def test_quick_keeps_its_meaning() -> None:
    quick = RunConfig().quick()
    assert (quick.train.float_epochs, quick.compress.qat_epochs) == (40, 5)
    assert (quick.verify.hil_images, quick.verify.whole_images) == (32, 32)
    assert quick.hardware.whole_synth is False and quick.hardware.synth is True
    assert dataclasses.replace(quick.compress, prune="magnitude").prune == Prune.MAGNITUDE


def test_whole_max_lanes_must_be_positive() -> None:
    with pytest.raises(BadInput, match="whole_max_lanes"):
        dataclasses.replace(RunConfig().hardware, whole_max_lanes=0)


@pytest.mark.parametrize("change", [{"prune": "random"}, {"weight_bits": 5},
                                    {"lowrank": "svd", "prune": "heads"}])
def test_a_recipe_cannot_be_built_invalid(change: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        dataclasses.replace(CompressionRecipe(), **change)


def test_the_readme_config_block_is_the_defaults(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("- `--config FILE`", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.toml"
    path.write_text(block)
    assert load_config(path) == RunConfig()
