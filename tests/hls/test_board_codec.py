"""The board record (one place for every board fact, settable from the boards TOML) and the
codec seam between the planner, the layout and the weight words."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import digits_like, random_layer
from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import BOARDS, get_board, load_boards_file, part_family
from vitfpga.hls.plan.engine import fixed_plan, plan_model
from vitfpga.hls.plan.layout import model_tables, weight_words
from vitfpga.hls.plan.system import ps_family, system_spec
from vitfpga.runtime.codecs import codec_for, pack_lanes, unpack_lanes

_TABLE = """[boards.{name}]
part = "{part}"
lut = 47232
ff = 94464
bram36 = 150
uram = 0
dsp = 240
clock_mhz = 200.0
{extra}"""


def _boards(tmp_path: Path, extra: str = "", part: str = "xczu2cg-sbva484-1-e",
            name: str = "my-zu2") -> dict:
    path = tmp_path / "boards.toml"
    path.write_text(_TABLE.format(name=name, part=part, extra=extra))
    return load_boards_file(path)


def test_built_in_boards_carry_every_fact() -> None:
    kv, z2 = get_board("kv260"), get_board("pynq-z2")
    assert (kv.family, kv.ps, kv.board_part) == ("xcup", "zynqmp",
                                                  "xilinx.com:kv260_som:part0:1.4")
    assert (z2.family, z2.ps, z2.board_part) == ("xc7", "zynq7", "tul.com.tw:pynq-z2:part0:1.0")
    for board in BOARDS.values():
        # the record agrees with the part-number rules synthesis used before it existed
        assert board.synth_family == part_family(board.part)
        assert ps_family(board).name == board.ps and board.board_part


def test_toml_board_derives_defaults_from_its_part(tmp_path: Path) -> None:
    board = _boards(tmp_path)["my-zu2"]
    assert (board.family, board.ps, board.board_part, board.has_ps) == ("xcup", "zynqmp", "",
                                                                        True)


def test_toml_board_sets_board_part_family_and_ps(tmp_path: Path) -> None:
    extra = 'board_part = "acme.com:zu2:part0:1.0"\nfamily = "xcup"\nps = "zynqmp"\n'
    # a part no prefix rule knows: the table's own facts are what count
    board = _boards(tmp_path, extra, part="xazu2eg-sbva484-1-q")["my-zu2"]
    assert (board.family, board.ps, board.board_part) == ("xcup", "zynqmp",
                                                          "acme.com:zu2:part0:1.0")
    assert board.synth_family == "xcup" and ps_family(board).name == "zynqmp"
    layers, rows = digits_like(1)
    plan = plan_model(layers, rows, board)
    spec = system_spec(plan, board, "digits")
    assert (spec.board_part, spec.ps, spec.part) == ("acme.com:zu2:part0:1.0", "zynqmp",
                                                     "xazu2eg-sbva484-1-q")


def test_unknown_part_refuses_only_where_the_fact_is_needed(tmp_path: Path) -> None:
    board = _boards(tmp_path, part="xazu2eg-sbva484-1-q")["my-zu2"]
    assert board.family == "" and board.ps == ""
    with pytest.raises(BadInput, match=r"no Yosys family .* family = "):
        board.synth_family  # noqa: B018
    with pytest.raises(BadInput, match="no processing system to build"):
        ps_family(board)
    fabric = _boards(tmp_path, 'ps = "none"\n')["my-zu2"]
    assert not fabric.has_ps
    with pytest.raises(BadInput, match="has no processing system"):
        ps_family(fabric)


@pytest.mark.parametrize(("extra", "match"), [
    ('family = "xc8"\n', r"family = 'xc8' is not one of xc7, xcup"),
    ('ps = "zynq9"\n', r"ps = 'zynq9' is not one of zynq7, zynqmp, none"),
    ('board_part = "a b;exit"\n', "board_part may hold only"),
    ('has_ps = false\nps = "zynq7"\n', "has_ps = false contradicts ps = 'zynq7'"),
    ("family = 3\n", "family"),
])
def test_bad_board_facts_are_one_line(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(BadInput, match=match) as e:
        _boards(tmp_path, extra)
    assert "\n" not in str(e.value) and "[boards.my-zu2]" in str(e.value)


def test_dense_codec_is_the_engine_layout() -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(-7, 8, size=(5, 7))
    codec = codec_for("dense", 4)
    layer = dataclasses.replace(random_layer(7, 5, bits=4), weight=w)
    words = weight_words(layer, 2, 3, 4)
    assert codec.element_bits == 4 and len(words) == codec.words(7, 5, 2, 3, 4) == 3 * 3
    # lane p*SIMD + s of word nf*SF + sf is w[nf*PE + p, sf*SIMD + s], zero past the edges
    padded = np.zeros((6, 9), dtype=np.int64)
    padded[:5, :7] = w
    for nf in range(3):
        for sf in range(3):
            lanes = unpack_lanes(words[nf * 3 + sf], 4, 6)
            assert lanes == padded[nf * 2:nf * 2 + 2, sf * 3:sf * 3 + 3].reshape(-1).tolist()
    assert pack_lanes([-1, 1], 2) == 0b0111
    # in 8-bit lanes two 4-bit iterations share a word: lane i holds iteration 2j in its low
    # nibble and 2j+1 in its high one
    wide = weight_words(layer, 2, 3, 8)
    assert len(wide) == codec.words(7, 5, 2, 3, 8) == 5
    for it in range(9):
        lanes = unpack_lanes(wide[it // 2], 8, 6)
        nibbles = [((v & 0xFF) >> (4 * (it % 2))) & 0xF for v in lanes]
        assert [v - 16 if v & 8 else v for v in nibbles] == unpack_lanes(words[it], 4, 6)


def test_unknown_codec_names_the_layer() -> None:
    with pytest.raises(ValueError, match="unknown weight codec 'sparse'; known codecs: dense, nm"):
        codec_for("sparse", 4)
    layer = random_layer(8, 4, seed=1, name="blocks.0.mlp.fc1")
    # a codec this runtime cannot encode (IntLinear refuses one at construction; a layer from a
    # newer writer could still name one)
    odd = dataclasses.replace(layer)
    object.__setattr__(odd, "codec", "sparse")
    layers = {"blocks.0.mlp.fc1": odd}
    with pytest.raises(BadInput, match=r"layer blocks.0.mlp.fc1: unknown weight codec 'sparse'"):
        plan_model(layers, {"blocks.0.mlp.fc1": 2}, get_board("pynq-z2"))
    plan = fixed_plan({"blocks.0.mlp.fc1": layer}, {"blocks.0.mlp.fc1": 2},
                      get_board("pynq-z2"), 2, 2)
    with pytest.raises(BadInput, match=r"layer blocks\.0\.mlp\.fc1: unknown weight codec"):
        model_tables(plan, layers)
