"""`vitfpga run` on compressed models: factored, sparse-term and shared-decoder layers, and
layers stored encoded (mixed widths, N:M, ternary, codebook), run on the generated engine
bit-exact, and the whole integer-only ViT runs with the RTL in the loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# What these runs prove is that each recipe's layers (factors, sparse terms, shared decoders)
# are bit-exact on the engine RTL and through hardware in the loop. The quick run already covers
# csim, Icarus, Yosys and many images on the same generated code, and no assertion here needs
# accuracy, so: one RTL simulator, few images, short training. whole_images is small rather than
# 0 so a recipe the whole-model design comes to run is checked there too (today it skips them).
COMMON = """[train]
float_epochs = 6
[hardware]
synth = false
[verify]
simulators = ["verilator"]
hil_images = 4
whole_images = {whole}
[compress]
qat_epochs = 1
"""
RECIPES = {  # appended to COMMON's [compress] table
    "shared-decoders": "shared_rank = 6\nweight_bits = 3\n",
    "low-rank-plus-sparse": 'lowrank = "aware"\nlowrank_keep = 0.5\nlowrank_sparse = 0.05\n',
    # int4 and int3 2:4 blocks (compute skipped), int8 ends: three widths, two element sizes
    "nm-mixed": 'weight_bits = 4\nprune = "nm"\nprune_nm = "2:4"\n'
                'layer_bits = ["head=8", "patch_embed=8", "blocks.2.*=3"]\n',
    # ternary pruned blocks 0-1, block 2 at int4 clustered onto 4 values, int8 ends
    "ternary-codebook": 'weight_bits = 2\nprune = "magnitude"\nprune_sparsity = 0.7\n'
                        'codebook_bits = 2\n'
                        'layer_bits = ["head=8", "patch_embed=8", "blocks.2.*=4"]\n',
}
# The codecs each recipe's layers must be stored in (report.json plan.layers[*].codec).
CODECS = {"shared-decoders": {"dense"}, "low-rank-plus-sparse": {"dense"},
          "nm-mixed": {"dense", "nm:2:4"}, "ternary-codebook": {"dense", "ternary", "codebook:2"}}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_compressed_run_is_bit_exact_on_the_engine(tmp_path: Path, recipe: str) -> None:
    cfg = tmp_path / "run.toml"
    # The encoded recipes skip the whole model: tests/sim/test_rtl_codecs.py runs the whole
    # model with N:M, codebook and dense layers, and its Verilator build is most of a run's time.
    whole = 0 if recipe in ("nm-mixed", "ternary-codebook") else 4
    cfg.write_text(COMMON.format(whole=whole) + RECIPES[recipe])
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "vitfpga.cli", "run", "--config", str(cfg),
                           "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    layers = {v["layer"] for v in report["verification"]}
    if recipe in ("shared-decoders", "low-rank-plus-sparse"):
        assert {"blocks.0.attn.qkv.u", "blocks.0.attn.qkv.v"} <= layers
    assert {s["codec"] for s in report["plan"]["layers"]} == CODECS[recipe]
    size = report["size"]  # the encoded streams on chip, against what the codecs count
    assert size["counted_weight_bits"] <= size["onchip_weight_bits"] \
        <= 1.10 * size["counted_weight_bits"]
    if recipe == "low-rank-plus-sparse":
        assert any(name.endswith(".s") for name in layers)
    assert all(v["compared"] > 0 and v["mismatches"] == 0 for v in report["verification"])
    assert report["hil"]["logits_identical"] is True
    plan = json.loads((out / "project" / "plan.json").read_text())
    bases = {s["name"]: s["w_base"] for s in plan["layers"]}
    if recipe == "shared-decoders":  # one decoder per layer type, read by every block
        for t in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            assert len({bases[f"blocks.{b}.{t}.v"] for b in range(3)}) == 1
    assert report["size"]["weight_ratio"] > 4
