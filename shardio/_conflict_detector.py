"""ConflictDetector: one task at a time in an operation family of a resource."""

from __future__ import annotations

from types import TracebackType

from ._core import BusyResourceError


class ConflictDetector:
    """Refuses a second concurrent user of one operation family.

    For stream implementations, which allow one sender and one receiver at
    a time: ``with self._send_conflict:`` around ``send_all`` raises
    :class:`~shardio.BusyResourceError` with ``message`` if another task is
    inside it. Entering is not a checkpoint; leaving always releases.
    """

    __slots__ = ("_held", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise BusyResourceError(self._message)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False
