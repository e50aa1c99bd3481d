"""`vitfpga board-sim`: a simulated board that speaks PYNQ.remote on a local address.

The real pynq 4.0 client (`PYNQ_REMOTE_DEVICES=<ip>`; it always dials port 7967) talks gRPC to
a board's `RemoteDevice`, `Mmio`, `RemoteBuffer` and `Gpio` services. This server offers the same
services, built from pynq's own protocol files (`sim.pynq_protocol`), over the `sim.board.Board`
model: files, DDR buffers, bitstream download, register access at the project's addresses
(engine, AXI DMA, AXI GPIO) with the project's RTL in the cocotb bench behind them.

Several simulated boards can run at once on distinct loopback addresses (127.0.0.2, ...):
the client's port is fixed, its address is not.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import signal
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import grpc

from vitfpga.errors import BadInput, VitfpgaError
from vitfpga.hls.emit.hwh import hwh_text
from vitfpga.sim.bitfile import simulated_bit
from vitfpga.sim.board import FIRMWARE, Board, BoardError, Pl
from vitfpga.sim.pynq_protocol import PYNQ_PORT, Protocol, load_protocol, service_handler

__all__ = ["CHUNK", "DEFAULT_POLL_CYCLES", "BoardSim", "write_overlay"]

CHUNK = 2 * 1024 * 1024  # bytes per streamed message, as pynq's client chunks its writes
# Clock cycles one DMA status read lets the simulation run: a register read over PYNQ.remote
# takes on the order of 100 us on a board, 10,000 cycles at 100 MHz.
DEFAULT_POLL_CYCLES = 10_000


def write_overlay(board: Board, out: Path) -> tuple[Path, Path]:
    """`out/<design>.bit` (the simulated bitstream) and `out/<design>.hwh` (the description
    pynq parses), what a user points `Overlay` or the driver at."""
    out.mkdir(parents=True, exist_ok=True)
    s = board.spec
    bit, hwh = out / f"{s.design}.bit", out / f"{s.design}.hwh"
    for path, data in ((bit, simulated_bit(s.design, s.part, board.fingerprint)),
                       (hwh, hwh_text(s).encode())):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return bit, hwh


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an RPC under the board's lock; a board error ends the call with its message."""

    @functools.wraps(method)
    def call(self: _Service, request: Any, context: grpc.ServicerContext) -> Any:
        with self.board.lock:
            try:
                return method(self, request, context)
            except (BoardError, FileNotFoundError, ValueError) as e:
                code = (grpc.StatusCode.NOT_FOUND if isinstance(e, FileNotFoundError)
                        else grpc.StatusCode.FAILED_PRECONDITION)
                self.board.log(f"board-sim: {method.__name__}: {e}")
                context.abort(code, str(e))
            except (RuntimeError, VitfpgaError) as e:  # the simulation itself failed
                self.board.log(f"board-sim: {method.__name__}: the simulation failed: {e}")
                context.abort(grpc.StatusCode.INTERNAL, f"the simulated board failed: {e}")
    return call


class _Service:
    def __init__(self, board: Board, protocol: Protocol, file: str) -> None:
        self.board, self._protocol, self._file = board, protocol, file

    def msg(self, name: str, **fields: Any) -> Any:
        return self._protocol.message(self._file, name)(**fields)

    def chunks(self, name: str, data: bytes) -> Iterator[Any]:
        """`data` as a stream of `name` messages of at most CHUNK bytes (one, when empty)."""
        for i in range(0, max(len(data), 1), CHUNK):
            yield self.msg(name, data=data[i:i + CHUNK])


class _Device(_Service):
    """RemoteDevice: files (fpga_manager's among them), bitstream attributes, PL clocks."""

    @_guarded
    def existsfile(self, request: Any, context: Any) -> Any:
        return self.msg("ExistsFileResponse", exists=self.board.exists(request.file_path))

    def readfile(self, request: Any, context: Any) -> Iterator[Any]:
        return self.chunks("ReadFileResponse", self._read(request, context))

    @_guarded
    def _read(self, request: Any, context: Any) -> bytes:
        return self.board.read_file(request.file_path)

    @_guarded
    def writefile(self, request_iterator: Iterator[Any], context: Any) -> Any:
        parts: dict[str, list[bytes]] = {}
        for req in request_iterator:
            parts.setdefault(req.file_path, []).append(req.data)
        for path, chunks in parts.items():
            self.board.write_file(path, b"".join(chunks))
        return self.msg("WriteFileResponse")

    @_guarded
    def set_bitstream_attrs(self, request: Any, context: Any) -> Any:
        self.board.binfile = request.binfile_name
        return self.msg("SetBitstreamAttrsResponse", status=True)

    @_guarded
    def download(self, request_iterator: Iterator[Any], context: Any) -> Any:
        name = self.board.binfile or f"{self.board.spec.design}.bin"
        self.board.files[FIRMWARE + name] = b"".join(r.buffer for r in request_iterator)
        self.board.program(name)
        return self.msg("DownloadResponse", status=True)

    @_guarded
    def set_pl_clk(self, request: Any, context: Any) -> Any:
        # The simulation has no clock to set; pynq sets PL clocks through the PS registers
        # (board.ps) on download, so this request is only reported.
        self.board.log(f"board-sim: set_pl_clk {request.i} to {request.clk_mhz} MHz requested")
        return self.msg("SetPlClkResponse", status=True)

    @_guarded
    def shutdown(self, request: Any, context: Any) -> Any:
        return self.msg("ShutdownResponse", status=True)


class _Mmio(_Service):
    """Mmio: windows onto the physical address map, 32-bit register access."""

    def __init__(self, board: Board, protocol: Protocol, file: str) -> None:
        super().__init__(board, protocol, file)
        self._windows: dict[str, tuple[int, int]] = {}
        self._ids = itertools.count(1)

    def _address(self, mmio_id: str, offset: int, nbytes: int) -> int:
        if mmio_id not in self._windows:
            raise BoardError(f"no MMIO window {mmio_id!r}")
        base, length = self._windows[mmio_id]
        if offset + nbytes > length:
            raise BoardError(f"offset {offset:#x} is outside the {length}-byte window at "
                             f"{base:#x}")
        return base + offset

    @_guarded
    def get_mmio(self, request: Any, context: Any) -> Any:
        try:
            self.board.window(request.base_addr, request.length)
        except BoardError as e:
            return self.msg("GetMmioResponse", status=False, msg=str(e))
        key = f"mmio-{next(self._ids)}"
        self._windows[key] = (int(request.base_addr), int(request.length))
        return self.msg("GetMmioResponse", status=True, mmio_id=key)

    @_guarded
    def read(self, request: Any, context: Any) -> Any:
        if request.length != 4:
            return self.msg("ReadResponse", status=False,
                            msg=f"{request.length}-byte reads: the AXI4-Lite slaves of this "
                                f"design are 32 bits wide")
        try:
            value = self.board.mmio_read(self._address(request.mmio_id, request.offset, 4))
        except BoardError as e:
            return self.msg("ReadResponse", status=False, msg=str(e))
        return self.msg("ReadResponse", status=True, data=value)

    @_guarded
    def write(self, request: Any, context: Any) -> Any:
        data = bytes(request.data)
        try:
            base = self._address(request.mmio_id, request.offset, len(data))
            for i in range(0, len(data), 4):  # wider writes are successive 32-bit words
                self.board.mmio_write(base + i, int.from_bytes(data[i:i + 4], "little"))
        except BoardError as e:
            return self.msg("WriteResponse", status=False, msg=str(e))
        return self.msg("WriteResponse", status=True)


class _Buffers(_Service):
    """RemoteBuffer: DDR allocations; writes land in the CPU's view until flushed."""

    @_guarded
    def allocate(self, request: Any, context: Any) -> Any:
        key = self.board.ddr.allocate(int(request.size), request.dtype)
        return self.msg("AllocateResponse", buffer_id=key)

    @_guarded
    def write(self, request_iterator: Iterator[Any], context: Any) -> Any:
        position: dict[str, int] = {}
        for req in request_iterator:
            buf = self.board.ddr.get(req.buffer_id)
            # explicit [start, end) when given, else chunks follow each other from byte 0
            at = req.start if req.end > req.start else position.get(req.buffer_id, 0)
            if at + len(req.data) > len(buf.cpu):
                return self.msg("BufferWriteResponse",
                                msg=f"{len(req.data)} bytes at {at} overrun the "
                                    f"{len(buf.cpu)}-byte buffer")
            buf.cpu[at:at + len(req.data)] = req.data
            position[req.buffer_id] = at + len(req.data)
        return self.msg("BufferWriteResponse")

    def read(self, request: Any, context: Any) -> Iterator[Any]:
        return self.chunks("BufferReadResponse", self._snapshot(request, context))

    @_guarded
    def _snapshot(self, request: Any, context: Any) -> bytes:
        buf = self.board.ddr.get(request.buffer_id)
        end = request.end if request.end > request.start else len(buf.cpu)
        return bytes(buf.cpu[request.start:end])

    @_guarded
    def freebuffer(self, request: Any, context: Any) -> Any:
        self.board.ddr.get(request.buffer_id)
        del self.board.ddr.buffers[request.buffer_id]
        return self.msg("FreeBufferResponse")

    @_guarded
    def flush(self, request: Any, context: Any) -> Any:
        buf = self.board.ddr.get(request.buffer_id)
        buf.memory[:] = buf.cpu
        return self.msg("FlushResponse")

    @_guarded
    def invalidate(self, request: Any, context: Any) -> Any:
        buf = self.board.ddr.get(request.buffer_id)
        buf.cpu[:] = buf.memory
        return self.msg("InvalidateResponse")

    @_guarded
    def physical_address(self, request: Any, context: Any) -> Any:
        return self.msg("AddressResponse",
                        address=self.board.ddr.get(request.buffer_id).physical)

    @_guarded
    def virtual_address(self, request: Any, context: Any) -> Any:
        # the board process's mapping of the buffer: the same fixed offset for every buffer
        phys = self.board.ddr.get(request.buffer_id).physical
        return self.msg("AddressResponse", address=0xFFFF_0000_0000 | phys)

    @_guarded
    def cacheable(self, request: Any, context: Any) -> Any:
        self.board.ddr.get(request.buffer_id)
        return self.msg("CacheableResponse", cacheable=True)


class _Gpio(_Service):
    """Gpio: the PS's Linux GPIO pins (sysfs), as plain exported pins."""

    NPINS: ClassVar[dict[str, int]] = {"zynq7": 118, "zynqmp": 174}  # MIO + EMIO pins

    def __init__(self, board: Board, protocol: Protocol, file: str) -> None:
        super().__init__(board, protocol, file)
        self._pins: dict[str, list[Any]] = {}  # id -> [index, direction, value]

    def _pin(self, gpio_id: str) -> list[Any]:
        if gpio_id not in self._pins:
            raise BoardError(f"GPIO {gpio_id!r} is not exported")
        return self._pins[gpio_id]

    @_guarded
    def get_gpio(self, request: Any, context: Any) -> Any:
        if request.direction not in ("in", "out"):
            raise BoardError(f"GPIO direction must be 'in' or 'out', not {request.direction!r}")
        key = f"gpio{request.index}"
        self._pins[key] = [request.index, request.direction, 0]
        return self.msg("GetGpioResponse", gpio_id=key)

    @_guarded
    def read(self, request: Any, context: Any) -> Any:
        return self.msg("GpioReadResponse", value=self._pin(request.gpio_id)[2])

    @_guarded
    def write(self, request: Any, context: Any) -> Any:
        self._pin(request.gpio_id)[2] = int(request.value)
        return self.msg("GpioWriteResponse")

    @_guarded
    def unexport(self, request: Any, context: Any) -> Any:
        self._pins.pop(request.gpio_id, None)
        return self.msg("GpioUnexportResponse")

    @_guarded
    def is_exported(self, request: Any, context: Any) -> Any:
        return self.msg("GpioIsExportedResponse", is_exported=request.gpio_id in self._pins)

    @_guarded
    def get_gpio_base_path(self, request: Any, context: Any) -> Any:
        return self.msg("GetGpioBasePathResponse", base_path="/sys/class/gpio/gpiochip0/")

    @_guarded
    def get_gpio_npins(self, request: Any, context: Any) -> Any:
        return self.msg("GetGpioNPinsResponse", npins=self.NPINS[self.board.spec.ps])


STOP_TIMEOUT_S = 30.0  # the most `with BoardSim` waits for grpc to stop serving

_SERVICES = (("remote_device", "RemoteDevice", _Device), ("mmio", "Mmio", _Mmio),
             ("buffer", "RemoteBuffer", _Buffers), ("gpio", "Gpio", _Gpio))


class BoardSim:
    """The server: `with BoardSim(project, host=...) as sim:` serves until the block ends.

    Entering builds the project's RTL simulation (once per build directory) and writes the
    overlay files (`overlay_dir`) before it listens, so the first download is quick."""

    def __init__(self, project: Path, *, host: str = "127.0.0.1", port: int = PYNQ_PORT,
                 sim: str = "verilator", build_dir: Path | None = None,
                 overlay_dir: Path | None = None, poll_cycles: int = DEFAULT_POLL_CYCLES,
                 log: Callable[[str], None] = print) -> None:
        project = Path(project).resolve()
        self.board = Board(project, sim, build_dir or project / "build", poll_cycles, log)
        self.host, self.port = host, port
        self.overlay_dir = Path(overlay_dir or project / "board-sim" / "overlay")
        self.bit: Path | None = None
        self.hwh: Path | None = None
        self._server: grpc.Server | None = None

    def __enter__(self) -> BoardSim:
        protocol = load_protocol()
        self.bit, self.hwh = write_overlay(self.board, self.overlay_dir)
        self._warm_up()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                             options=[("grpc.max_receive_message_length", 4 * CHUNK),
                                      ("grpc.max_send_message_length", 4 * CHUNK)])
        for file, name, cls in _SERVICES:
            server.add_generic_rpc_handlers(
                (service_handler(protocol, file, name, cls(self.board, protocol, file)),))
        address = f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise BadInput(f"board-sim cannot listen on {address} (in use? another board-sim "
                           f"runs there; pick another address with --host 127.0.0.N)")
        server.start()
        self._server = server
        return self

    def _warm_up(self) -> None:
        """Build the simulation now (the first build takes minutes), then stop it: the PL
        powers up unprogrammed."""
        Pl(self.board).close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._server is not None:
            # Bounded: after the grace grpc cancels what is left, so this is a backstop only.
            self._server.stop(grace=1.0).wait(timeout=STOP_TIMEOUT_S)
            self._server = None
        with contextlib.suppress(Exception):
            self.board.close()

    def wait(self) -> str:
        """Serve until Ctrl-C or SIGTERM (main thread only); return the signal's name.

        The handlers only record the signal. A KeyboardInterrupt raised at an arbitrary point
        can land inside grpc's or threading's `with lock:` and leave that lock held, after which
        stopping the server waits forever (seen under load)."""
        assert self._server is not None
        received: list[int] = []
        previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not received and self._server.wait_for_termination(timeout=0.5):
                pass  # wait_for_termination says True while the server still runs
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return signal.Signals(received[0]).name if received else "server stopped"
