"""Pruning masks, the gradual schedule, Brevitas + export of masked weights, structured shrink."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from vitfpga.ir import IntLinear
from vitfpga.quant.codecs import nm_prune
from vitfpga.quant.data import Split
from vitfpga.quant.export import export_linears
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.quant.prune import (
    Pruner,
    PruneSpec,
    check_nm,
    head_mask,
    magnitude_mask,
    neuron_mask,
    nm_mask,
    shrink_structured,
    sparsity_report,
)
from vitfpga.quant.qat import float_vit, quant_linear, quant_vit
from vitfpga.quant.structure import SlotSpec, dense_structure
from vitfpga.quant.synthetic import random_layer
from vitfpga.quant.train import train
from vitfpga.runtime.model import linear_golden

torch.set_num_threads(1)
CFG = ViTConfig(image_size=8, patch_size=2, dim=16, depth=2, heads=4, mlp_ratio=2)
HD = CFG.dim // CFG.heads


def _warm(model: nn.Module, passes: int = 3) -> nn.Module:
    """Forward passes in train mode, so Brevitas' activation quantisers initialise."""
    gen = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.randn(8, 1, 8, 8, generator=gen))
    return model


def test_magnitude_mask_exact() -> None:
    w = torch.tensor([[0.1, -3.0, 0.5, 2.0], [-0.2, 1.0, -4.0, 0.05]])
    keep = magnitude_mask(w, 0.5)
    assert keep.tolist() == [[False, True, False, True], [False, True, True, False]]
    # 0.3 of 8 prunes 2 (floor, robust to float error); pruned entries stay pruned.
    assert (~magnitude_mask(w, 0.3)).sum() == 2
    assert not (magnitude_mask(w, 0.7, prev=keep) & ~keep).any()


def test_nm_mask_exact_with_ties_and_short_group() -> None:
    w = torch.tensor([[1.0, -5.0, 3.0, 0.5, 2.0, 2.0]])  # K=6, M=4: groups [0:4], [4:6]
    assert nm_mask(w, 2, 4).tolist() == [[False, True, True, False, True, True]]
    w = torch.tensor([[2.0, 2.0, -2.0, 1.0]])  # ties: lower index kept
    assert nm_mask(w, 1, 4).tolist() == [[True, False, False, False]]


@given(arrays(np.int64, st.tuples(st.integers(1, 5), st.integers(1, 13)),
              elements=st.integers(-7, 7)), st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 8)]))
@settings(max_examples=80, deadline=None)
def test_nm_mask_matches_codec_prune(w: np.ndarray, nm: tuple[int, int]) -> None:
    keep = nm_mask(torch.from_numpy(w).float(), *nm).numpy()
    np.testing.assert_array_equal(np.where(keep, w, 0), nm_prune(w, *nm))


def test_head_mask_ranks_rows_and_proj_columns() -> None:
    dim, heads = 4, 2  # hd = 2: head 0 owns rows 0,1 / 4,5 / 8,9 of qkv and proj cols 0,1
    qkv, proj = torch.ones(3 * dim, dim), torch.ones(dim, dim)
    qkv[[0, 1, 4, 5, 8, 9]] = 0.1
    assert head_mask(qkv, proj, heads, 0.5).tolist() == [False, True]
    proj[:, 2:] = 0.0  # now head 1's proj columns are dead: 6*4*0.01 + 4*2 > 6*4
    qkv[[0, 1, 4, 5, 8, 9]] = 0.9
    assert head_mask(qkv, proj, heads, 0.5).tolist() == [True, False]
    assert head_mask(torch.ones(12, 4), torch.ones(4, 4), 4, 0.99).sum() == 1  # one kept


def test_neuron_mask_exact() -> None:
    fc1 = torch.tensor([[1.0, 1.0], [0.1, 0.1], [2.0, 0.0], [0.0, 0.0]])  # 4 neurons, K=2
    fc2 = torch.tensor([[0.0, 0.0, 0.0, 3.0]])  # neuron 3 lives through fc2 alone
    assert neuron_mask(fc1, fc2, 0.25).tolist() == [True, False, True, True]
    assert neuron_mask(fc1, fc2, 0.5).tolist() == [False, False, True, True]


@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 9)),
              elements=st.floats(-4, 4)), st.lists(st.floats(0, 0.99), min_size=2, max_size=5))
@settings(max_examples=100, deadline=None)
def test_masks_are_nested_and_exact(w: np.ndarray, levels: list[float]) -> None:
    weight, keep = torch.from_numpy(w), None
    for s in sorted(levels):
        new = magnitude_mask(weight, s, prev=keep)
        assert (~new).sum() == min(w.size - 1, int(s * w.size + 1e-9))
        assert keep is None or not (new & ~keep).any()  # nothing regrows
        keep = new


@given(st.integers(1, 60), st.floats(0.0, 0.99), st.floats(0.05, 1.0))
@settings(max_examples=100, deadline=None)
def test_cubic_schedule_monotone_and_reaches_target(total: int, target: float,
                                                    ramp: float) -> None:
    spec = PruneSpec("magnitude", sparsity=target, ramp=ramp)
    s = [spec.sparsity_at(t, total) for t in range(total + 1)]
    assert s[0] == 0.0 and all(a <= b for a, b in itertools.pairwise(s))
    end = max(1, round(ramp * total))
    assert all(x == pytest.approx(target) for x in s[end:])


def test_nm_switches_on_at_a_fixed_epoch() -> None:
    spec = PruneSpec("nm", n=1, m=4, nm_start=0.5)
    assert [spec.sparsity_at(t, 6) for t in range(7)] == [0, 0, 0, 0.75, 0.75, 0.75, 0.75]


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "nm", "n": 4, "m": 4}, "N:M needs 1 ≤ N < M, got 4:4"),
    ({"method": "nm", "n": 0, "m": 4}, "got 0:4"),
    ({"sparsity": 1.0}, "sparsity must be in [0, 1), got 1.0"),
    ({"sparsity": -0.1}, "sparsity must be in [0, 1)"),
    ({"method": "random"}, "unknown pruning method 'random'"),
    ({"targets": ()}, "targets must name"),
    ({"targets": "blocks.*"}, "targets must be a tuple"),
    ({"ramp": 0.0}, "ramp"),
])
def test_bad_specs_raise_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        PruneSpec(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_pruner_misuse_is_reported() -> None:
    model = ViT(CFG)
    with pytest.raises(ValueError, match="no layer matches targets"):
        Pruner(model, PruneSpec(targets=("nothing.*",)), 2)
    pruner = Pruner(model, PruneSpec(), 1)
    pruner.finalize()
    with pytest.raises(RuntimeError, match="finalized"):
        pruner.step(0)


def test_structured_pruning_rejects_factored_slots() -> None:
    structure = dense_structure(CFG, 8) | {"blocks.0.attn.qkv": SlotSpec(rank=4)}
    model = float_vit(CFG, structure)
    message = "heads pruning needs dense qkv/proj slots; blocks.0.attn.qkv is FactoredLinear"
    with pytest.raises(ValueError, match=re.escape(message)):
        Pruner(model, PruneSpec("heads", 0.5), 3)
    # Magnitude may still target the sparse term of a factored slot by path.
    structure["blocks.0.attn.qkv"] = SlotSpec(rank=4, sparse=True)
    pruner = Pruner(float_vit(CFG, structure), PruneSpec(targets=("*.qkv.s",)), 1)
    pruner.step(0)
    assert list(pruner.masks()) == ["blocks.0.attn.qkv.s.weight"]


def test_brevitas_quantises_the_masked_tensor() -> None:
    torch.manual_seed(0)
    layer = quant_linear(8, 4, "x", 8)
    _warm(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), layer))
    w = layer.weight.detach().clone()
    pruner = Pruner(nn.ModuleDict({"fc": layer}), PruneSpec(targets=("fc",), sparsity=0.5), 1)
    pruner.step(0)
    keep = torch.from_numpy(pruner.masks()["fc.weight"])
    qw = layer.quant_weight()
    assert (qw.int()[~keep] == 0).all() and (qw.int()[keep] != 0).any()
    # Per-channel AbsMax scale of the masked rows (8-bit narrow range: 127), not the dense ones.
    expected = (w * keep).abs().amax(1) / 127
    torch.testing.assert_close(qw.scale.reshape(-1), expected)
    pruner.finalize()
    exported = export_linears(nn.ModuleDict({"fc": layer}))["fc"]
    assert not exported.weight[~keep.numpy()].any()
    np.testing.assert_allclose(exported.w_scale, expected.double().numpy(), rtol=1e-6)


def test_nm_survives_quantisation_and_export() -> None:
    torch.manual_seed(1)
    student = quant_vit(CFG, ViT(CFG), 4)
    spec = PruneSpec("nm", n=2, m=4)
    pruner = Pruner(student, spec, total_epochs=3)
    assert pruner.step(0) == 0.5
    _warm(student)
    pruner.finalize()
    assert not any("parametrizations" in k for k in student.state_dict())
    layers = export_linears(student)
    encoded = check_nm(layers, spec)
    assert set(encoded) == {n for n in layers if n.startswith("blocks.")}
    for name, code in encoded.items():
        np.testing.assert_array_equal(code.decode(), layers[name].weight)
    dense = {n: replace(v, weight=np.ones_like(v.weight)) for n, v in layers.items()}
    with pytest.raises(ValueError, match=r"layer blocks\.0\.attn\.qkv: weights are not 2:4"):
        check_nm(dense, spec)
    report = sparsity_report(layers)
    assert report["patch_embed"] < 0.2 and report["head"] < 0.2  # left dense
    assert all(report[n] >= 0.5 for n in encoded)


def _attention_int(x: np.ndarray, qkv: IntLinear, proj: IntLinear) -> np.ndarray:
    """Integer qkv, float64 attention head by head (heads = qkv N // (3*hd)), integer proj."""
    y = linear_golden(x, qkv).astype(np.float64) * qkv.out_scale
    heads, dim = qkv.n // (3 * HD), qkv.n // 3
    q, k, v = (y[:, i * dim:(i + 1) * dim] for i in range(3))
    outs = []
    for h in range(heads):
        s = slice(h * HD, (h + 1) * HD)
        a = q[:, s] @ k[:, s].T * HD**-0.5
        a = np.exp(a - a.max(1, keepdims=True))
        outs.append(a / a.sum(1, keepdims=True) @ v[:, s])
    z = np.clip(np.round(np.concatenate(outs, 1) / proj.in_scale), -128, 127).astype(np.int64)
    return linear_golden(z, proj)


def _mlp_int(x: np.ndarray, fc1: IntLinear, fc2: IntLinear) -> np.ndarray:
    h = torch.from_numpy(linear_golden(x, fc1) * fc1.out_scale)
    g = torch.round(nn.functional.gelu(h) / fc2.in_scale).clamp(-128, 127).to(torch.int64)
    return linear_golden(g, fc2)


def test_structured_pruning_exports_and_shrinks_exactly() -> None:
    torch.manual_seed(2)
    student = quant_vit(CFG, ViT(CFG), 8)
    heads = Pruner(student, PruneSpec("heads", 0.5), 1)
    neurons = Pruner(student, PruneSpec("neurons", 0.75), 1)
    heads.step(0), neurons.step(0)
    _warm(student)
    heads.finalize(), neurons.finalize()
    layers = export_linears(student)  # dead rows get a live scale, so requant stays in range
    small = shrink_structured(layers, HD)
    x = np.random.default_rng(0).integers(-128, 128, size=(9, CFG.dim))
    for b in range(CFG.depth):
        p = f"blocks.{b}."
        qkv, fc1 = layers[p + "attn.qkv"], layers[p + "mlp.fc1"]
        dead = ~qkv.weight.reshape(3, CFG.heads, HD, -1).any(axis=(0, 2, 3))
        assert dead.sum() == 2 and not qkv.bias.reshape(3, CFG.heads, HD)[:, dead].any()
        assert (~fc1.weight.any(1)).sum() == 24 and not fc1.bias[~fc1.weight.any(1)].any()
        assert small[p + "attn.qkv"].weight.shape == (3 * 2 * HD, CFG.dim)
        assert small[p + "attn.proj"].weight.shape == (CFG.dim, 2 * HD)
        assert small[p + "mlp.fc1"].n == 8 and small[p + "mlp.fc2"].k == 8
        assert small[p + "mlp.fc1"].multiplier.shape == small[p + "mlp.fc1"].w_scale.shape == (8,)
        np.testing.assert_array_equal(
            _attention_int(x, small[p + "attn.qkv"], small[p + "attn.proj"]),
            _attention_int(x, qkv, layers[p + "attn.proj"]))
        np.testing.assert_array_equal(_mlp_int(x, small[p + "mlp.fc1"], small[p + "mlp.fc2"]),
                                      _mlp_int(x, fc1, layers[p + "mlp.fc2"]))
    assert small["patch_embed"] is layers["patch_embed"]


def test_float_neuron_pruning_keeps_the_mlp_output() -> None:
    torch.manual_seed(3)
    model = ViT(CFG)
    pruner = Pruner(model, PruneSpec("neurons", 0.5, targets=("blocks.0.*",)), 1)
    pruner.step(0)
    pruner.finalize()
    mlp = model.blocks[0].mlp
    live = mlp.fc1.weight.detach().any(1)
    assert live.sum() == 16 and not mlp.fc1.bias[~live].any()
    assert model.blocks[1].mlp.fc1.weight.detach().all()  # not targeted
    fc1, fc2 = nn.Linear(CFG.dim, 16), nn.Linear(16, CFG.dim)
    with torch.no_grad():
        fc1.weight.copy_(mlp.fc1.weight[live]), fc1.bias.copy_(mlp.fc1.bias[live])
        fc2.weight.copy_(mlp.fc2.weight[:, live]), fc2.bias.copy_(mlp.fc2.bias)
    x = torch.randn(5, CFG.dim)
    torch.testing.assert_close(fc2(nn.functional.gelu(fc1(x))), mlp(x), rtol=0, atol=1e-6)


def test_shrink_keeps_units_with_a_live_bias() -> None:
    fc1 = random_layer(3, 4, name="blocks.0.mlp.fc1")
    fc2 = random_layer(4, 3, name="blocks.0.mlp.fc2", seed=1)
    fc1.weight[[1, 2]], fc1.bias[[1, 2]] = 0, [7, 0]  # neuron 1 still outputs its bias
    small = shrink_structured({"blocks.0.mlp.fc1": fc1, "blocks.0.mlp.fc2": fc2}, 2)
    np.testing.assert_array_equal(small["blocks.0.mlp.fc1"].weight, fc1.weight[[0, 1, 3]])
    np.testing.assert_array_equal(small["blocks.0.mlp.fc1"].shift, fc1.shift[[0, 1, 3]])
    np.testing.assert_array_equal(small["blocks.0.mlp.fc2"].weight, fc2.weight[:, [0, 1, 3]])


def test_training_with_the_pruner_reaches_the_target() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=gen), torch.randint(0, 10, (96,), generator=gen)
    model = ViT(CFG)
    pruner = Pruner(model, PruneSpec("magnitude", 0.6), total_epochs=2)
    seen: list[float] = []
    train(model, Split(x, y, x, y), epochs=2, lr=1e-3, seed=0,
          on_epoch=lambda e, loss: seen.append(pruner.step(e, loss)))
    assert seen == [pytest.approx(0.6)] * 2
    pruner.finalize()
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            zeros = float((m.weight == 0).float().mean())
            assert zeros == (pytest.approx(0.6, abs=0.01) if name.startswith("blocks.") else 0)
    ViT(CFG).load_state_dict(model.state_dict())  # plain parameter names again
