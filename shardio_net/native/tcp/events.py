"""What a connection tells the application, as h11 does: events, in order.

:meth:`TcpConnection.events` hands over the events since the last call. The
socket layer turns them into wake-ups and exceptions:

* :class:`Connected` -- the three-way handshake completed (ESTABLISHED).
* :class:`DataReceived` -- in-order bytes, as the views of the frames they
  arrived in. Consecutive data is merged into one event (its ``data`` list
  grows), so a burst of segments costs one event, not one per segment.
* :class:`EndOfStream` -- the peer's FIN, after all its data.
* :class:`BuffersReleased` -- buffers given to ``send`` that the connection
  no longer holds (acknowledged, or the connection ended): the socket layer
  may reuse them, and ``send_space`` grew.
* :class:`Reset` -- the connection was refused or reset by the peer.
* :class:`TimedOut` -- a retry limit was reached (SYN, data, zero-window
  probes or keepalive); the reason says which.
* :class:`Closed` -- the connection is over (CLOSED); always the last event.
  The stack may forget the connection once it has drained it.
"""

from __future__ import annotations

import errno as _errno

import attrs

__all__ = [
    "BuffersReleased",
    "Closed",
    "Connected",
    "DataReceived",
    "EndOfStream",
    "Event",
    "Reset",
    "TimedOut",
]


@attrs.frozen
class Connected:
    """The handshake completed: the connection is ESTABLISHED."""


@attrs.define(slots=True, eq=True)
class DataReceived:
    """In-order received bytes: views of the frames they arrived in (no copy).

    The views stay valid as long as they are referenced; the connection
    keeps none of them. Hand :meth:`TcpConnection.consumed` the number of
    bytes once the application has used them, to reopen the window.
    """

    data: list[memoryview]

    @property
    def nbytes(self) -> int:
        """How many bytes the event carries."""
        return sum(len(view) for view in self.data)


@attrs.frozen
class EndOfStream:
    """The peer finished sending (its FIN arrived, after all its data)."""


@attrs.frozen
class BuffersReleased:
    """The oldest ``count`` buffers taken by ``send``, ``nbytes`` bytes in all,
    are no longer referenced by the connection.

    Buffers are released in the order they were taken (a buffer ``send`` took
    only in part counts as one buffer of the part taken). Released because the
    peer acknowledged them, or because the connection ended without it.
    """

    count: int
    nbytes: int


@attrs.frozen
class Reset:
    """The peer refused the connection (RST to our SYN) or reset it."""

    refused: bool
    reason: str

    @property
    def errno(self) -> int:
        """ECONNREFUSED or ECONNRESET, for an ``OSError``."""
        return _errno.ECONNREFUSED if self.refused else _errno.ECONNRESET


@attrs.frozen
class TimedOut:
    """A retry limit was reached; ``reason`` says which and after how long."""

    reason: str

    @property
    def errno(self) -> int:
        """ETIMEDOUT, for an ``OSError``."""
        return _errno.ETIMEDOUT


@attrs.frozen
class Closed:
    """The connection reached CLOSED; no more events follow."""


Event = Connected | DataReceived | EndOfStream | BuffersReleased | Reset | TimedOut | Closed
