"""Boards, memory mapping and identifier sanitising (the model plan: test_plan.py; the
whole-model design: test_vit_plan.py)."""

import pytest

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import BOARDS, get_board
from vitfpga.hls.plan.memory import BRAM36_BITS, map_memory
from vitfpga.hls.plan.names import identifier, unique_identifiers


def test_boards_have_data_sheet_figures() -> None:
    z2 = get_board("PYNQ-Z2")
    assert (z2.part, z2.bram36, z2.dsp, z2.lut) == ("xc7z020clg400-1", 140, 220, 53_200)
    assert get_board("kv260").uram == 64 and get_board("zcu104").uram == 96
    assert set(BOARDS) >= {"pynq-z1", "pynq-z2", "ultra96-v2", "kv260", "zcu104", "zcu102"}


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match="known boards: pynq-z1, pynq-z2"):
        get_board("de10-nano")


@pytest.mark.parametrize(("width", "depth", "bram36"), [
    (72, 512, 1), (36, 1024, 1), (4, 8192, 1), (1, 32768, 1), (18, 512, 0.5),
    (73, 512, 1.5),  # one 72x512 RAMB36 and a RAMB18 column for the extra bit
    (128, 64, 2), (144, 1024, 4), (8, 100_000, 24.5),
])
def test_map_memory_cheapest_tiling(width: int, depth: int, bram36: float) -> None:
    mem = map_memory(width, depth)
    assert mem.bram36 == bram36
    assert mem.efficiency == pytest.approx(width * depth / (bram36 * BRAM36_BITS))
    assert sum(w * n for w, _, n in mem.columns) >= width


def test_map_memory_is_never_worse_than_one_shape() -> None:
    import math

    from vitfpga.hls.plan.memory import BRAM36_SHAPES

    for width in (1, 7, 64, 100, 256, 1000):
        for depth in (10, 512, 1500, 9000):
            single = min(math.ceil(width / w) * math.ceil(depth / d) for w, d in BRAM36_SHAPES)
            assert map_memory(width, depth).bram36 <= single


def test_map_memory_prefers_uram_only_when_cheaper() -> None:
    assert map_memory(72, 4096, uram_limit=4).uram == 1
    assert map_memory(72, 512, uram_limit=4).uram == 0
    split = map_memory(72, 3 * 4096, uram_limit=2)  # two URAM rows, the rest in BRAM36
    assert (split.uram, split.bram36) == (2, 8)


def test_identifiers_are_safe_everywhere() -> None:
    evil = 'blocks.0/attn "qkv"; $finish'
    ident = identifier(evil)
    assert ident == "blocks_0_attn_qkv_finish"
    for name in ("0abc", "module", "", "ap_start", "a" * 100, "é"):
        out = identifier(name)
        assert out and out[0].isalpha() and out.replace("_", "").isalnum() and len(out) <= 48
    assert identifier("module") != "module"
    assert len(set(unique_identifiers(["a.b", "a/b", "a b"]).values())) == 3
