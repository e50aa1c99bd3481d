"""PYNQ.remote's wire protocol, taken from the installed `pynq` package itself.

pynq 4.0 ships the protocol as generated protobuf modules (`pynq/remote/<name>_pb2.py`): the
messages and the service descriptors a board's server and the host's client share. The simulated
board serves exactly those services, so it loads the `_pb2` modules from pynq's own files and
builds its gRPC handlers from their service descriptors (method names, request and response
types, streaming kinds). Nothing of the protocol is restated here.

Only the `_pb2` files are loaded, by path: they need nothing but protobuf, whereas importing the
`pynq` package runs its board-side `__init__` (device probing, pynq's pinned numpy and grpcio),
which this environment does not have to satisfy. Hence pynq is installed here without its
dependencies (`pip install --no-deps pynq==4.0.0`, done by `make setup`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from vitfpga.errors import BadInput

__all__ = ["PROTOCOL_FILES", "PYNQ_PORT", "Protocol", "load_protocol", "service_handler"]

PYNQ_PORT = 7967  # pynq.pl_server.remote_device.PYNQ_PORT: the client always dials it
# The services a PYNQ.remote board runs (the RF ones are for RFSoC boards only).
PROTOCOL_FILES = ("remote_device", "mmio", "buffer", "gpio")
_INSTALL = "pip install --no-deps pynq==4.0.0"


@dataclass(frozen=True)
class Protocol:
    """pynq's generated modules, by file stem (`remote_device`, `mmio`, `buffer`, `gpio`)."""

    modules: dict[str, ModuleType]
    pynq_dir: Path

    def message(self, file: str, name: str) -> Any:
        """A message class, e.g. `message("mmio", "ReadResponse")`."""
        return getattr(self.modules[file], name)


_LOADED: dict[Path, Protocol] = {}


def _pynq_dir() -> Path:
    spec = importlib.util.find_spec("pynq")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(f"board-sim speaks PYNQ.remote with pynq's own protocol files, and pynq is "
                       f"not installed here: {_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_protocol() -> Protocol:
    """pynq's `remote/*_pb2.py` modules, loaded once per process."""
    root = _pynq_dir()
    if root in _LOADED:
        return _LOADED[root]
    modules = {}
    for stem in PROTOCOL_FILES:
        path = root / "remote" / f"{stem}_pb2.py"
        if not path.is_file():
            raise BadInput(f"{path} is missing: this pynq has no PYNQ.remote (4.0 or later is "
                           f"needed: {_INSTALL})")
        # A private module name: the real `pynq.remote` package is never half-imported.
        spec = importlib.util.spec_from_file_location(f"_vitfpga_pynq_{stem}_pb2", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[stem] = module
    _LOADED[root] = Protocol(modules=modules, pynq_dir=root)
    return _LOADED[root]


_KINDS = {(False, False): grpc.unary_unary_rpc_method_handler,
          (True, False): grpc.stream_unary_rpc_method_handler,
          (False, True): grpc.unary_stream_rpc_method_handler,
          (True, True): grpc.stream_stream_rpc_method_handler}


def service_handler(protocol: Protocol, file: str, service: str,
                    servicer: object) -> grpc.GenericRpcHandler:
    """gRPC handlers for every method of `service` (as the descriptor in `file` lists them),
    each calling the servicer's method of the same name with (request, context)."""
    descriptor = protocol.modules[file].DESCRIPTOR.services_by_name[service]
    handlers = {}
    for method in descriptor.methods:
        call: Callable[..., Any] = getattr(servicer, method.name)
        request = protocol.message(file, method.input_type.name)
        response = protocol.message(file, method.output_type.name)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(call, request_deserializer=request.FromString,
                                     response_serializer=response.SerializeToString)
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)
