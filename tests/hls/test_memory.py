"""The ROM model of `map_memory(..., rom=True)` against what Yosys synth_xilinx built.

Each row was measured with `vitfpga.sim.synth.probe_rom` (Yosys 0.70, a `$readmemh` ROM of random
words with a registered, clock-enabled read as in the engine's stage A): block RAM in RAMB36
units and the LUTs outside RAM primitives (a ROM lowered to logic, or the read multiplexer
across depth-stacked primitives). tests/sim/test_synth.py checks the model on a live synthesis.
"""

import pytest

from vitfpga.hls.plan.memory import map_memory

# (width, depth, family, Yosys bram36, Yosys LUTs)
MEASURED = [
    (256, 394, "xc7", 4.0, 0), (128, 788, "xc7", 4.0, 0), (64, 1575, "xc7", 4.0, 0),
    (256, 2000, "xc7", 14.5, 0), (576, 1500, "xc7", 24.0, 576), (64, 15, "xc7", 0.0, 64),
    (160, 30, "xc7", 0.0, 160), (576, 5000, "xcup", 80.0, 1152), (72, 4096, "xcup", 8.0, 0),
    (128, 64, "xc7", 0.0, 128), (128, 128, "xc7", 0.0, 256), (256, 100, "xc7", 0.0, 512),
    (36, 300, "xc7", 0.5, 0), (100, 1500, "xc7", 4.5, 100), (200, 700, "xc7", 6.0, 0),
    (48, 3000, "xc7", 4.0, 48), (73, 512, "xc7", 1.5, 0), (18, 512, "xc7", 0.5, 0),
    (8, 3000, "xc7", 1.0, 0), (64, 520, "xc7", 2.0, 0), (64, 480, "xc7", 1.0, 0),
    (32, 1000, "xc7", 1.0, 0), (144, 300, "xc7", 2.0, 0), (512, 64, "xc7", 0.0, 512),
    (96, 256, "xc7", 0.0, 384), (40, 2500, "xc7", 3.0, 80), (128, 1200, "xcup", 5.5, 128),
    (256, 600, "xc7", 7.5, 0),
]


@pytest.mark.parametrize(("width", "depth", "family", "bram36", "luts"), MEASURED)
def test_rom_model_matches_yosys(width: int, depth: int, family: str, bram36: float,
                                 luts: int) -> None:
    # URAM offered on UltraScale+ parts: an initialised ROM cannot use it.
    mem = map_memory(width, depth, uram_limit=64 if family == "xcup" else 0, rom=True)
    assert (mem.bram36, mem.uram, mem.luts) == (bram36, 0, luts)
    assert mem.logic == (bram36 == 0)
    if not mem.logic:
        ((w, d, n),) = mem.columns  # one primitive shape, n of them
        assert n * w * d >= width * depth and mem.bram18 in (n, 2 * n)


def test_small_roms_go_to_luts_where_block_ram_model_spends_bram() -> None:
    # The per-channel tables of a small engine: the block-RAM model spends 2.5 BRAM36 on them.
    assert map_memory(160, 30).bram36 == 2.5
    table = map_memory(160, 30, rom=True)
    assert (table.bram36, table.logic, table.luts, table.efficiency) == (0, True, 160, 1.0)


def test_rom_never_uses_uram() -> None:
    # URAM288 has no initial contents on UltraScale+; the RAM model would take one.
    assert map_memory(72, 4096, uram_limit=4).uram == 1
    assert map_memory(72, 4096, uram_limit=4, rom=True).uram == 0


def test_block_ram_model_reports_read_mux_luts() -> None:
    assert map_memory(72, 512).luts == 0
    assert map_memory(576, 1500).luts == 576  # three 512-deep rows: one LUT5 per bit
