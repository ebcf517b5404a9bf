"""PcapWriter: every frame through a device, in a file tcpdump and Wireshark read.

The format is classic libpcap (not pcapng), the one every tool reads:

* a 24-byte file header: magic ``0xa1b2c3d4`` (microsecond timestamps),
  version 2.4, time zone offset 0, accuracy 0, snapshot length 65535, link
  type 1 (``LINKTYPE_ETHERNET``: each record is an Ethernet II frame,
  without FCS);
* per frame, a 16-byte record header -- seconds, microseconds, the number of
  bytes captured (at most the snapshot length), the frame's real length --
  then the captured bytes.

Integers are written little-endian whatever the machine, so a capture is the
same file everywhere; readers tell the byte order from the magic. A frame
longer than 65535 bytes (a jumbo MTU near the 16-bit limit) is cut there and
keeps its real length in the record, as tcpdump's own captures do.

Timestamps are the ``now`` of the call that carried the frame: under a
``MockClock`` they start near 0 (1 January 1970 to a reader), and the file
is a function of the frames and the clock alone -- the same run twice gives
the same capture, byte for byte, which is how the native stack's
determinism is tested. Frames are recorded in the order the stack saw them:
received ones in ``receive``, sent ones in ``transmit``. Classic pcap has no
direction flag; the MACs tell the directions apart.

Where the writer sits decides what it records:
``PcapWriter(FaultInjector(port), path)`` records what the stack received
after the faults and what it sent; ``FaultInjector(PcapWriter(port, path))``
records what crossed the wire.

Blocking and failure
--------------------
Records go through a 64 KiB write buffer, so a frame costs a ``struct`` pack
and a few writes into memory, and the shard makes a ``write()`` system call
once per 64 KiB (to the page cache: microseconds), not per frame.
:meth:`PcapWriter.flush` pushes the buffer out (to look at a capture while it
grows); :meth:`PcapWriter.close` and :meth:`PcapWriter.detach` do so at the
end. If writing fails (the disk fills, say), the capture stops -- the file is
closed, the error kept in :meth:`PcapWriter.statistics` and a warning logged
on ``shardio_net.native`` -- while the frames go on: a capture never takes
the network down with it. An error opening the file, on the other hand, is
raised by the constructor, to the code that asked for the capture.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, final

import attrs

from shardio import ClosedResourceError

from .device import Device, Waker

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["LINKTYPE_ETHERNET", "PCAP_MAGIC", "SNAPLEN", "PcapStatistics", "PcapWriter"]

logger = logging.getLogger("shardio_net.native")

#: The classic pcap magic number (microsecond timestamps).
PCAP_MAGIC = 0xA1B2C3D4
#: The link type of a capture of Ethernet II frames.
LINKTYPE_ETHERNET = 1
#: The snapshot length: the most bytes of a frame a record holds.
SNAPLEN = 65535

_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_BUFFER_SIZE = 65536


@attrs.frozen
class PcapStatistics:
    """What a :class:`PcapWriter` has recorded."""

    #: Frames recorded from ``receive``.
    frames_received: int
    #: Frames recorded from ``transmit``.
    frames_transmitted: int
    #: Bytes given to the file, headers included (some may still be in the
    #: write buffer until :meth:`PcapWriter.flush`).
    bytes_written: int
    #: Why the capture stopped, if writing failed; ``None`` while it runs.
    error: str | None


@final
class PcapWriter:
    """Records every frame through ``inner`` in a pcap file at ``path``;
    a :class:`~.device.Device` itself. See the module docs.

    The file is created (or truncated) and its header written at once.
    """

    __slots__ = (
        "_bytes_written",
        "_error",
        "_file",
        "_frames_received",
        "_frames_transmitted",
        "_inner",
        "_open",
        "path",
    )

    def __init__(self, inner: Device, path: str | os.PathLike[str]) -> None:
        #: Where the capture goes.
        self.path = os.fspath(path)
        self._inner = inner
        self._open = True
        self._frames_received = self._frames_transmitted = 0
        self._bytes_written = 0
        self._error: str | None = None
        self._file: BinaryIO | None = open(self.path, "wb", buffering=_BUFFER_SIZE)  # noqa: SIM115
        self._write((_FILE_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET),))

    def __repr__(self) -> str:
        return f"<PcapWriter {self.path!r} around {self._inner!r}>"

    @property
    def inner(self) -> Device:
        """The device this one wraps."""
        return self._inner

    @property
    def mtu(self) -> int:
        """The wrapped device's MTU."""
        return self._inner.mtu

    @property
    def checksums_verified(self) -> bool:
        """The wrapped device's promise that every frame's checksums were
        checked already (a TAP with checksum offload); a capture changes no frame."""
        return bool(getattr(self._inner, "checksums_verified", False))

    @property
    def mac(self) -> bytes:
        """The wrapped device's MAC."""
        return self._inner.mac

    def receive(self, now: float) -> list[memoryview]:
        """The wrapped device's frames, each recorded at ``now``."""
        # Hot path: once per stack pass, the loop once per frame.
        if not self._open:
            raise ClosedResourceError("this pcap writer was closed")
        frames = self._inner.receive(now)
        if frames and self._file is not None:
            record = self._record
            for frame in frames:
                record((frame,), frame.nbytes, now)
            self._frames_received += len(frames)
        return frames

    def transmit(self, frames: Sequence[Sequence[Buffer]], now: float) -> None:
        """Record ``frames`` at ``now``, then pass them to the wrapped device."""
        # Hot path: once per stack pass, the loop once per frame.
        if not self._open:
            raise ClosedResourceError("this pcap writer was closed")
        if frames and self._file is not None:
            record = self._record
            for parts in frames:
                size = 0
                for part in parts:
                    size += len(part) if type(part) is bytes else memoryview(part).nbytes
                record(parts, size, now)
            self._frames_transmitted += len(frames)
        self._inner.transmit(frames, now)

    def _record(self, parts: Sequence[Buffer], size: int, now: float) -> None:
        # Hot path: once per frame.
        seconds = int(now)
        micros = round((now - seconds) * 1e6)
        if micros == 1_000_000:
            seconds += 1
            micros = 0
        captured = size
        if size > SNAPLEN:
            captured = SNAPLEN
            parts = (b"".join(parts)[:SNAPLEN],)
        self._write((_RECORD_HEADER.pack(seconds, micros, captured, size), *parts))

    def _write(self, chunks: Sequence[Buffer]) -> None:
        file = self._file
        if file is None:
            return
        try:
            for chunk in chunks:
                self._bytes_written += file.write(chunk)
        except OSError as exc:
            self._stop(exc)

    def _stop(self, exc: OSError) -> None:
        self._error = f"{type(exc).__name__}: {exc}"
        logger.warning("pcap capture to %s stopped, the frames go on: %s", self.path, self._error)
        self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                # Closing flushes what is left, which fails as the write did
                # if that is why we are here: keep the first error.
                if self._error is None:
                    self._error = f"{type(exc).__name__}: {exc}"

    def flush(self) -> None:
        """Write out what the buffer holds, so that a reader of the file sees
        every frame recorded so far."""
        file = self._file
        if file is not None:
            try:
                file.flush()
            except OSError as exc:
                self._stop(exc)

    def detach(self) -> Device:
        """End the capture (flush and close the file) and return the wrapped
        device, still open: to stop capturing while the stack runs on."""
        self._open = False
        self.flush()
        self._close_file()
        return self._inner

    def close(self) -> None:
        """End the capture and close the wrapped device (unless it was
        detached). Idempotent."""
        if self._open:
            self.detach()
            self._inner.close()

    def statistics(self) -> PcapStatistics:
        """Counters of the capture, and why it stopped if it did."""
        return PcapStatistics(
            frames_received=self._frames_received,
            frames_transmitted=self._frames_transmitted,
            bytes_written=self._bytes_written,
            error=self._error,
        )

    def set_waker(self, waker: Waker | None) -> None:
        """Frames only arrive through the wrapped device: its waker is ours."""
        self._inner.set_waker(waker)

    def next_deadline(self) -> float:
        """The wrapped device's deadline."""
        return self._inner.next_deadline()
