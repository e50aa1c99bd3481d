"""QONNX export of the Brevitas student: the file loads in qonnx, carries the right quantisers
and computes what the Brevitas model computes."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from torch import nn

from vitfpga.errors import BadInput, ToolFailed, VitfpgaError
from vitfpga.quant.model import ViT, ViTConfig
from vitfpga.quant.qat import float_vit, quant_vit
from vitfpga.quant.qonnx_export import export_qonnx
from vitfpga.quant.structure import SlotSpec, dense_structure

torch.set_num_threads(1)

# Depth 1 keeps every op kind of the ViT (patchify, cls cat, LayerNorm, softmax, GELU) while
# the dynamo exporter's time, which grows with the node count, stays a few seconds per export.
CFG = ViTConfig(depth=1)
BATCH = 2  # the exported graph has the example's static batch size
UNCALIBRATED_SCALE = 1 / 128  # Brevitas' placeholder before any statistics were collected


def calibrated_student(structure: dict[str, SlotSpec] | int, seed: int = 0) -> ViT:
    """Random teacher -> Brevitas student, with a few train-mode passes so the activation
    quantisers collect statistics; returned in eval mode."""
    torch.manual_seed(seed)
    teacher = ViT(CFG) if isinstance(structure, int) else float_vit(CFG, structure)
    student = quant_vit(CFG, teacher, structure)
    student.train()
    with torch.no_grad():
        for _ in range(4):
            student(torch.rand(16, CFG.in_chans, CFG.image_size, CFG.image_size))
    return student.eval()


def images(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(BATCH, CFG.in_chans, CFG.image_size, CFG.image_size, generator=g)


def quant_nodes(model: ModelWrapper) -> tuple[list[tuple[int, int]], list[tuple[int, float]]]:
    """(bits, ndim) of every parameter Quant and (bits, scale) of every activation Quant."""
    params, acts = [], []
    for node in model.get_nodes_by_op_type("Quant"):
        assert node.domain == "qonnx.custom_op.general"
        bits = int(model.get_initializer(node.input[3]))
        value = model.get_initializer(node.input[0])
        if value is not None:
            params.append((bits, value.ndim))
        else:
            acts.append((bits, float(model.get_initializer(node.input[1]))))
    return params, acts


def brevitas_act_scales(student: nn.Module) -> list[float]:
    return [float(q.scale()) for name, q in student.named_modules()
            if name.endswith(("input_quant", "output_quant")) and hasattr(q, "scale")]


def assert_matches(model: ModelWrapper, student: nn.Module) -> None:
    """QONNX (onnxruntime per node + qonnx's numpy Quant) against Brevitas. Both apply the same
    float32 ops, but the kernels may round a last bit differently; right before a Quant that can
    move a value by one step, so the bound is two steps of the head's output quantiser (observed:
    exactly equal)."""
    step = float(student.head.output_quant.scale())
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    for seed in range(3):
        x = images(100 + seed)
        with torch.no_grad():
            ref = student(x).numpy()
        out = execute_onnx(model, {iname: x.numpy()})[oname]
        assert out.shape == ref.shape == (BATCH, CFG.num_classes)
        np.testing.assert_allclose(out, ref, rtol=0, atol=2 * step)
        assert np.mean(out == ref) >= 0.9


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> tuple[ViT, Path]:
    student = calibrated_student(4)
    path = tmp_path_factory.mktemp("qonnx") / "vit.onnx"
    export_qonnx(student, path, images(0))
    return student, path


def test_dense_export_loads_with_the_right_quantisers(dense: tuple[ViT, Path]) -> None:
    student, path = dense
    model = ModelWrapper(str(path))
    assert [i.name for i in model.graph.input] == ["global_in"]  # weights are initializers
    assert model.get_tensor_shape("global_in") == [BATCH, 1, 8, 8]
    params, acts = quant_nodes(model)
    layers = sum(1 for m in student.modules() if type(m).__name__ == "QuantLinear")
    assert sorted(params) == sorted([(4, 2)] * layers + [(32, 1)] * layers)  # weights, biases
    assert [bits for bits, _ in acts] == [8] * (2 * layers)  # every layer's input and output
    scales = [s for _, s in acts]
    # Calibrated: positive, not the placeholder, and what Brevitas itself uses.
    assert all(s > 0 and np.isfinite(s) and s != UNCALIBRATED_SCALE for s in scales)
    assert len(set(scales)) > 1
    np.testing.assert_allclose(sorted(scales), sorted(brevitas_act_scales(student)), rtol=1e-6)
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Softmax", "Concat", "MatMul"} <= ops


def test_dense_export_computes_what_brevitas_computes(dense: tuple[ViT, Path]) -> None:
    student, path = dense
    assert_matches(ModelWrapper(str(path)), student)


def test_export_is_byte_identical_and_leaves_the_model_alone(
        dense: tuple[ViT, Path], tmp_path: Path) -> None:
    student, path = dense
    x = images(7)
    with torch.no_grad():
        before = student(x)
    again = tmp_path / "again.onnx"
    export_qonnx(student, again, images(0))
    assert again.read_bytes() == path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["again.onnx"]  # no temp file left behind
    with torch.no_grad():
        assert torch.equal(student(x), before)
    assert not student.training


def test_factored_fc1_exports_u_and_v(tmp_path: Path) -> None:
    structure = dense_structure(CFG, 4)
    structure["blocks.0.mlp.fc1"] = SlotSpec(bits=4, rank=4)
    student = calibrated_student(structure, seed=1)
    path = tmp_path / "factored.onnx"
    export_qonnx(student, path, images(0))
    model = ModelWrapper(str(path))
    params, acts = quant_nodes(model)
    layers = len(structure) + 1  # fc1 is two QuantLinears, u (32 -> 4) and v (4 -> 64)
    assert sorted(params) == sorted([(4, 2)] * layers + [(32, 1)] * layers)
    assert [bits for bits, _ in acts] == [8] * (2 * layers)
    weight_shapes = {tuple(model.get_tensor_shape(n.input[0]))
                     for n in model.get_nodes_by_op_type("Quant")
                     if model.get_initializer(n.input[0]) is not None}
    assert {(32, 4), (4, 64)} <= weight_shapes or {(4, 32), (64, 4)} <= weight_shapes
    assert_matches(model, student)


class _Untraceable(nn.Module):
    """Runs eagerly, but leaves torch for numpy: no exporter can trace through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.detach().numpy().copy())


def _bad_input(fn: object, *args: object, error: type[VitfpgaError] = BadInput) -> str:
    with pytest.raises(error) as info:
        fn(*args)  # type: ignore[operator]
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message
    # Raised `from None`: printed uncaught, it shows no chained traceback of the cause.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def test_failures_are_one_line_bad_input(dense: tuple[ViT, Path], tmp_path: Path) -> None:
    student, _ = dense
    x = images(0)
    msg = _bad_input(export_qonnx, student, tmp_path / "missing" / "vit.onnx", x)
    assert "does not exist" in msg
    assert "must be a float" in _bad_input(export_qonnx, student, tmp_path / "a.onnx",
                                           torch.rand(2, 3, 8, 8))
    assert "no quantised layers" in _bad_input(export_qonnx, ViT(CFG), tmp_path / "b.onnx", x)
    cold = quant_vit(CFG, ViT(CFG), 4).eval()
    assert "never saw data" in _bad_input(export_qonnx, cold, tmp_path / "c.onnx", x)
    assert list(tmp_path.iterdir()) == []


def test_tracer_failure_is_one_line_and_writes_nothing(
        dense: tuple[ViT, Path], tmp_path: Path) -> None:
    broken = deepcopy(dense[0])
    # First thing in the graph, so the tracer gives up before doing the rest of the work.
    broken.patch_embed = nn.Sequential(_Untraceable(), broken.patch_embed)
    target = tmp_path / "vit.onnx"
    target.write_bytes(b"previous")
    msg = _bad_input(export_qonnx, broken, target, images(0), error=ToolFailed)
    # An exporter crash is a tool failure with its own exit code, not bad input (exit 2).
    assert ToolFailed.exit_code == 4 != BadInput.exit_code
    # The root cause, not torch.onnx's generic "Failed to export ... step 1/3" wrapper.
    assert msg.startswith("QONNX export failed: RuntimeError: ") and "numpy" in msg, msg
    assert "\x1b" not in msg
    assert target.read_bytes() == b"previous"  # the old file survives a failed export
    assert [p.name for p in tmp_path.iterdir()] == ["vit.onnx"]
