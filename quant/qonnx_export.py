"""Brevitas student -> QONNX, the quantised-ONNX dialect FINN reads.

Brevitas' own exporter writes the graph (weights, biases and activations as `Quant` nodes with
their scale, zero point and bit width), qonnx's `cleanup_model` folds the constants and infers
shapes, and the file lands atomically. The exporter is torch's `torch.export` ("dynamo") path,
Brevitas' default on torch >= 2.9: the TorchScript one is deprecated there, and `patchify`'s
`unfold` becomes two Gathers and a Transpose instead of a chain of Slice/Concat nodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import warnings
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vitfpga.errors import BadInput, ToolFailed

if TYPE_CHECKING:
    import onnx

    from vitfpga.quant.model import ViT

__all__ = ["OPSET", "export_qonnx", "qonnx_proto", "strip_provenance"]

# Pinned rather than left to torch's default so that a torch upgrade does not silently change
# the file; 20 is the dynamo exporter's native opset (no version conversion pass) and the first
# with a native Gelu. LayerNormalization needs >= 17.
OPSET = 20

# The dynamo exporter annotates nodes and tensors with debugging metadata; the stack traces
# hold absolute paths and line numbers, so the same model would give different bytes from
# another checkout. Only the two keys that map the graph back to our modules are kept: a
# node's `namespace` ("...: blocks.0.mlp.fc1: ...QuantLinear/...") and a parameter's original
# name ("p_blocks_0_mlp_fc1_weight"). The rest (FX dumps, class lists) doubles the file size.
_KEEP_METADATA = frozenset({"namespace", "pkg.torch.onnx.original_node_name"})

_NEEDED = ("onnx", "onnxscript", "onnxoptimizer", "onnxruntime", "qonnx")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(exc: BaseException) -> str:
    """`Type: first line` of the innermost explicit cause. torch.onnx wraps the real error
    ("RuntimeError: .numpy() is not supported ...") in a TorchExportError whose own message is
    generic advice in colour, so the cause is the informative part."""
    outer = exc
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    text = next((line for line in lines if line), "(no message)")
    if len(text) > 300:
        text = text[:297] + "..."
    via = f" (in {type(outer).__name__})" if outer is not exc else ""
    return f"{type(exc).__name__}: {text}{via}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's chatter (e.g. "torchvision is not installed" per op) for the
    duration; errors still propagate as exceptions."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _quantiser(name: str) -> str:
    """"blocks.0.attn.qkv.input_quant.fused_activation_quant_proxy...scaling_impl" ->
    "blocks.0.attn.qkv.input_quant": the part a user recognises."""
    parts = name.split(".")
    ends = [i for i, part in enumerate(parts) if part.endswith("_quant")]
    return ".".join(parts[: ends[0] + 1]) if ends else name


def _check_model(model: ViT, example: torch.Tensor) -> None:
    from brevitas.core.scaling.standalone import ParameterFromRuntimeStatsScaling
    from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer

    if not any(isinstance(m, QuantWeightBiasInputOutputLayer) for m in model.modules()):
        raise BadInput("QONNX export needs a Brevitas model (quant_vit); this one has no "
                       "quantised layers")
    # A runtime-stats scale that never saw a batch still holds its placeholder 1.0: the file
    # would be valid but every activation would saturate or vanish.
    cold = [_quantiser(name) for name, m in model.named_modules()
            if isinstance(m, ParameterFromRuntimeStatsScaling) and m.counter == 0]
    if cold:
        raise BadInput(f"{len(cold)} activation quantisers never saw data (first: {cold[0]}); "
                       "run a few batches in train mode, or load a trained checkpoint, before "
                       "exporting")
    cfg = model.cfg
    want = (cfg.in_chans, cfg.image_size, cfg.image_size)
    if (not isinstance(example, torch.Tensor) or example.dim() != 4
            or tuple(example.shape[1:]) != want or not example.is_floating_point()):
        shape = tuple(example.shape) if isinstance(example, torch.Tensor) else type(example)
        raise BadInput(f"QONNX example input must be a float (B, {want[0]}, {want[1]}, "
                       f"{want[2]}) tensor, got {shape}")


def strip_provenance(proto: onnx.ModelProto) -> None:
    """Drop doc strings and all metadata but `_KEEP_METADATA`, in place."""

    def clean(props: Any) -> None:  # a protobuf repeated field of StringStringEntryProto
        keep = [p for p in props if p.key in _KEEP_METADATA]
        del props[:]
        props.extend(keep)

    graph = proto.graph
    proto.doc_string = graph.doc_string = ""
    for node in graph.node:
        node.doc_string = ""
        clean(node.metadata_props)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.doc_string = ""
        clean(vi.metadata_props)
    for init in graph.initializer:
        init.doc_string = ""
        clean(init.metadata_props)


def qonnx_proto(model: ViT, example: torch.Tensor, *, dynamo: bool = True) -> onnx.ModelProto:
    """The cleaned QONNX graph of a Brevitas ViT, in memory. The batch size is the example's:
    FINN wants static shapes. `dynamo=False` uses the (deprecated) TorchScript exporter."""
    try:
        import onnx
        import onnxoptimizer  # noqa: F401  (fail here, with the list, not deep in Brevitas)  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
        from brevitas.export import export_qonnx as brevitas_export_qonnx
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError as exc:
        raise BadInput(f"QONNX export needs {', '.join(_NEEDED)} ({_one_line(exc)}); "
                       "reinstall vitfpga") from None

    _check_model(model, example)
    kwargs: dict[str, object] = {"opset_version": OPSET, "dynamo": dynamo}
    if dynamo:
        # verbose=False stops the per-stage progress prints on stdout; optimize is torch's
        # default but Brevitas warns unless it is explicit.
        kwargs |= {"verbose": False, "optimize": True}
    try:
        # Export works on a copy: Brevitas attaches export handlers and flips modes on the
        # module it is given, and the caller's model should come back exactly as it went in.
        student = deepcopy(model).cpu().eval()
        with _quiet(), torch.no_grad():
            raw = brevitas_export_qonnx(student, example.detach().cpu().float(), None, **kwargs)
            # Shape inference, constant folding (Quant nodes kept), static graph inputs (the
            # weights) turned into initializers, readable unique names. No InferDataTypes: with
            # non-unit scales it can only say FLOAT32, and FINN's frontend infers its own.
            wrapped = cleanup_model(ModelWrapper(raw))
            onnx.checker.check_model(wrapped.model)  # well-formed graph, not just loadable
    except Exception as exc:  # any tracer/exporter/cleanup failure, reported as one line
        # The model passed _check_model: a crash here is the exporter's, not the user's input.
        raise ToolFailed(f"QONNX export failed: {_one_line(exc)}") from None
    proto = wrapped.model
    strip_provenance(proto)
    return proto


def export_qonnx(model: ViT, path: Path, example: torch.Tensor, *, dynamo: bool = True) -> None:
    """Write the QONNX model of a calibrated Brevitas ViT (see `qonnx_proto`) to `path`.

    The file appears whole or not at all: it is written to a temporary file in the same
    directory and renamed over `path`. Same model, example and toolchain -> same bytes."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise BadInput(f"cannot write {path}: it is a directory")
    proto = qonnx_proto(model, example, dynamo=dynamo)
    try:
        data = proto.SerializeToString(deterministic=True)
    except Exception as exc:  # e.g. protobuf's 2 GiB limit
        raise ToolFailed(f"QONNX export failed: {_one_line(exc)}") from None
    # O_EXCL on a random name: never clobbers a concurrent writer's temp file, and unlike
    # mkstemp's 0600 the final file gets the usual umask-derived permissions.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
