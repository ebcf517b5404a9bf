"""Generic stream helpers, built only on the :mod:`shardio.abc` interfaces.

:class:`StapledStream` joins a send stream and a receive stream into one
bidirectional stream; :func:`aclose_forcefully` closes a resource without
waiting for any graceful goodbye.
"""

from __future__ import annotations

from typing import Generic, TypeVar, final

import attrs

from ._core import CancelScope
from .abc import AsyncResource, HalfCloseableStream, ReceiveStream, SendStream

__all__ = ["StapledStream", "aclose_forcefully"]

SendStreamT = TypeVar("SendStreamT", bound=SendStream)
ReceiveStreamT = TypeVar("ReceiveStreamT", bound=ReceiveStream)


async def aclose_forcefully(resource: AsyncResource) -> None:
    """Close ``resource`` at once, skipping any graceful goodbye.

    It calls ``resource.aclose()`` inside an already cancelled scope. Every
    :class:`~shardio.abc.AsyncResource` promises that a cancelled ``aclose``
    still closes it (only the grace is lost), so this cannot block for long;
    it is a checkpoint. Useful on error paths, where waiting for a peer to
    acknowledge a close (a TLS ``close_notify``, say) is pointless.
    """
    with CancelScope() as scope:
        scope.cancel("closing forcefully")
        await resource.aclose()


@final
@attrs.define(eq=False, slots=True)
class StapledStream(HalfCloseableStream, Generic[SendStreamT, ReceiveStreamT]):
    """One bidirectional stream made of a send stream and a receive stream.

    ``send_all`` and ``wait_send_all_might_not_block`` go to
    :attr:`send_stream`, ``receive_some`` to :attr:`receive_stream`.
    ``send_eof`` calls the send stream's own ``send_eof`` when it has one, and
    otherwise closes the send stream: for a one-way stream, closing *is*
    saying "no more data". ``aclose`` closes both, the receive stream even if
    closing the send stream raised.

    For example, two one-way memory streams stapled crosswise make a
    connected pair (this is what
    :func:`shardio.testing.memory_stream_pair` does)::

        send_a, receive_a = memory_stream_one_way_pair()
        send_b, receive_b = memory_stream_one_way_pair()
        left = StapledStream(send_a, receive_b)
        right = StapledStream(send_b, receive_a)
    """

    #: Where ``send_all``, ``wait_send_all_might_not_block`` and
    #: ``send_eof`` go.
    send_stream: SendStreamT
    #: Where ``receive_some`` goes.
    receive_stream: ReceiveStreamT

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` on :attr:`send_stream`."""
        await self.send_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until :attr:`send_stream` might take a ``send_all`` without blocking."""
        await self.send_stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Call ``send_eof`` on :attr:`send_stream` if it has one, else close it."""
        # Duck-typed, as Trio does: a one-way send stream may have its own
        # send_eof without being a (bidirectional) HalfCloseableStream.
        send_eof = getattr(self.send_stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()
        else:
            await self.send_stream.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive from :attr:`receive_stream`."""
        return await self.receive_stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Close :attr:`send_stream`, then :attr:`receive_stream` (always both)."""
        try:
            await self.send_stream.aclose()
        finally:
            await self.receive_stream.aclose()
