"""A rate limit as a link has one: serialization delay and a bounded queue.

A link of ``rate`` bytes per second puts a frame of ``n`` bytes on the wire
in ``n / rate`` seconds, one frame after another. A frame offered at ``now``
starts when the wire is free (``max(now, busy_until)``) and has left at
``start + n / rate``; ``busy_until`` moves there. The frames still waiting to
leave, and the rest of the one leaving, form the queue: at ``now`` it holds
``(busy_until - now) * rate`` bytes. A frame that would take it past
``queue_bytes`` is dropped: tail drop, a router's plain FIFO, which is what
makes a congestion controller see loss when it overruns the link. Rates are
counted in frame bytes (Ethernet header included; no preamble, gap or FCS).

No token bucket: a bucket lets a burst through at once, where a real link
spaces the frames out, and the spacing is what a sender's ACK clock and a
receiver's RTT samples depend on.
"""

from __future__ import annotations

__all__ = ["Serializer", "check_rate"]


def check_rate(rate: object, queue_bytes: object, max_frame: int) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``rate`` is ``None`` or a
    positive number of bytes per second, and ``queue_bytes`` an int that
    holds at least one frame of ``max_frame`` bytes."""
    if rate is not None:
        if not isinstance(rate, int | float) or isinstance(rate, bool):
            raise TypeError(f"rate must be a number of bytes per second or None, not {rate!r}")
        if not rate > 0 or rate == float("inf"):
            raise ValueError(f"rate must be a finite number of bytes per second > 0, not {rate}")
    if not isinstance(queue_bytes, int) or isinstance(queue_bytes, bool):
        raise TypeError(f"queue_bytes must be an int, not {queue_bytes!r}")
    if queue_bytes < max_frame:
        raise ValueError(
            f"queue_bytes must hold at least one frame of {max_frame} bytes "
            f"(mtu + 14), not {queue_bytes}"
        )


class Serializer:
    """Frames leaving at ``rate`` bytes/s through a queue of ``queue_bytes``."""

    __slots__ = ("busy_until", "queue_bytes", "rate")

    def __init__(self, rate: float, queue_bytes: int) -> None:
        self.rate = float(rate)
        self.queue_bytes = queue_bytes
        #: When the last frame admitted has left (``-inf``: the wire is idle).
        self.busy_until = float("-inf")

    def admit(self, size: int, now: float) -> float | None:
        """When a frame of ``size`` bytes offered at ``now`` has left, or
        ``None`` if the queue is full and it is dropped. Hot path: per frame."""
        busy = self.busy_until
        if busy > now:
            # Callers keep size <= one frame <= queue_bytes, so an idle wire
            # always takes a frame; only a backlog can overflow.
            if (busy - now) * self.rate + size > self.queue_bytes:
                return None
            now = busy
        busy = now + size / self.rate
        self.busy_until = busy
        return busy
