"""The dense packer and the ROM word layout both emitters rely on."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitfpga.hls.plan.layout import channel_words
from vitfpga.quant.codecs import (
    SUPPORTED_BITS,
    bitmap_encode,
    codebook_encode,
    narrow_range,
    nm_encode,
    nm_prune,
    nonzero_bits,
    pack_lanes,
    packed_bytes,
    unpack_lanes,
)


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


def test_channel_words_and_sizes() -> None:
    bias = np.array([5, -6, 7, -8])
    assert [unpack_lanes(w, 32, 2) for w in channel_words(bias, 2, 32)] == [[5, -6], [7, -8]]
    assert packed_bytes(np.zeros((3, 5)), 3) == 6  # 45 bits round up to 6 bytes


def _matrices(lo: int, hi: int) -> st.SearchStrategy[np.ndarray]:
    return st.tuples(st.integers(1, 6), st.integers(1, 20)).flatmap(
        lambda shape: st.lists(st.integers(lo, hi), min_size=shape[0] * shape[1],
                               max_size=shape[0] * shape[1]).map(
            lambda v: np.array(v, dtype=np.int64).reshape(shape)))


@given(w=_matrices(-7, 7), bits=st.integers(1, 4))
@settings(max_examples=200, deadline=None)
def test_codebook_is_exact_when_the_values_fit_the_table(w: np.ndarray, bits: int) -> None:
    cb = codebook_encode(w, bits)
    assert cb.table.size == 2**bits and cb.indices.max() < 2**bits
    assert np.all(np.diff(cb.table) >= 0)
    if np.unique(w).size <= 2**bits:
        assert np.array_equal(cb.decode(), w)
    else:  # lossy: every weight maps to its nearest table entry
        assert np.array_equal(np.abs(cb.decode() - w), np.abs(w[..., None] - cb.table).min(-1))
    assert cb.encoded_bits == w.size * bits + 2**bits * 8


@given(w=_matrices(-127, 127), nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 8)]))
@settings(max_examples=200, deadline=None)
def test_nm_prune_then_encode_round_trips(w: np.ndarray, nm: tuple[int, int]) -> None:
    n, m = nm
    pruned = nm_prune(w, n, m)
    assert pruned.shape == w.shape
    kept = pruned != 0
    assert np.all(pruned[kept] == w[kept])
    groups = np.pad(pruned, ((0, 0), (0, -w.shape[1] % m))).reshape(w.shape[0], -1, m)
    assert np.all(np.count_nonzero(groups, axis=2) <= n)
    enc = nm_encode(pruned, n, m, value_bits=8)
    assert np.array_equal(enc.decode(), pruned)
    assert np.all(np.diff(enc.positions, axis=2) > 0)
    pos_bits = max(1, (m - 1).bit_length())
    assert enc.encoded_bits == w.shape[0] * groups.shape[1] * n * (8 + pos_bits)


def test_nm_rejects_bad_ratios_and_dense_input() -> None:
    with pytest.raises(ValueError, match="1 <= N < M"):
        nm_prune(np.ones((2, 4)), 4, 4)
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        nm_encode(np.ones((2, 8), dtype=np.int64), 2, 4, 4)
    with pytest.raises(ValueError, match="index bits"):
        codebook_encode(np.ones((2, 2)), 0)


@given(st.data(), st.sampled_from(SUPPORTED_BITS))
@settings(max_examples=60, deadline=None)
def test_bitmap_round_trips_and_counts_real_bits(data: st.DataObject, bits: int) -> None:
    lo, hi = narrow_range(bits)
    n, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    w = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n * k, max_size=n * k)),
                 dtype=np.int64).reshape(n, k)
    enc = bitmap_encode(w, bits)
    assert np.array_equal(enc.decode(), w)
    assert enc.encoded_bits == w.size + np.count_nonzero(w) * nonzero_bits(bits)
    assert nonzero_bits(bits) == {2: 1, 3: 3, 4: 4, 8: 8}[bits]
