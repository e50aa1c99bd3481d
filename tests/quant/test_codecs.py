"""The dense packer and the ROM word layout both emitters rely on."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.hls.layout import channel_words, weight_words
from vitfpga.quant.codecs import narrow_range, pack_lanes, packed_bytes, unpack_lanes


@given(data=st.data(), bits=st.sampled_from([2, 3, 4, 8, 32]), lanes=st.integers(1, 40))
@settings(max_examples=300, deadline=None)
def test_pack_unpack_round_trip(data: st.DataObject, bits: int, lanes: int) -> None:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    values = data.draw(st.lists(st.integers(lo, hi), min_size=lanes, max_size=lanes))
    word = pack_lanes(values, bits)
    assert 0 <= word < 2 ** (bits * lanes)
    assert unpack_lanes(word, bits, lanes) == values


def test_pack_lane_order_is_lsb_first() -> None:
    assert pack_lanes([1, -1], 4) == 0xF1
    assert pack_lanes([-7, 7], 4) == 0x79


def test_pack_rejects_values_outside_the_lane() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        pack_lanes([8], 4)


def test_narrow_range_and_unsupported_bits() -> None:
    assert narrow_range(4) == (-7, 7) and narrow_range(2) == (-1, 1)
    with pytest.raises(ValueError, match="not supported"):
        narrow_range(5)


def test_weight_words_layout() -> None:
    w = np.arange(-12, 12).reshape(4, 6) % 7 - 3  # values in [-3, 3]
    words = weight_words(w, pe=2, simd=3, bits=4)
    assert len(words) == (4 // 2) * (6 // 3)
    for nf in range(2):
        for sf in range(2):
            lanes = unpack_lanes(words[nf * 2 + sf], 4, 6)
            for p in range(2):
                for s in range(3):
                    assert lanes[p * 3 + s] == w[nf * 2 + p, sf * 3 + s]


def test_channel_words_and_sizes() -> None:
    bias = np.array([5, -6, 7, -8])
    assert [unpack_lanes(w, 32, 2) for w in channel_words(bias, 2, 32)] == [[5, -6], [7, -8]]
    assert packed_bytes(np.zeros((3, 5)), 3) == 6  # 45 bits round up to 6 bytes
