"""Resources that close at once: ``close()``, and the rest of closing from it.

A channel end closes without waiting for anything: its ``close()`` updates the
channel's counts, wakes whoever waited on it, and returns. Such a resource
still owes its users Trio's whole closing protocol -- ``await aclose()``
(:class:`~shardio.abc.AsyncResource`'s method, a checkpoint like any async
operation), ``with`` and ``async with`` -- and all of it follows from
``close()``. :class:`SyncCloseable` writes it once, for the memory channel
ends (``shardio/_channel.py``, outside the core) and the cross-shard ones
(``_xchannel.py``) alike. It lives in the core because the core's ends need
it and the core imports nothing from outside; the memory channels reach it,
as they reach everything in the core, through ``shardio.lowlevel``.
"""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Self

from ._ki import enable_ki_protection
from ._traps import checkpoint


class SyncCloseable:
    """A mixin for resources whose ``close()`` closes them at once.

    The subclass defines ``close()`` (synchronous, not a checkpoint, and
    doing nothing the second time); this gives it ``await aclose()`` --
    ``close()``, then a checkpoint, so the resource is closed even when the
    checkpoint raises ``Cancelled`` -- and ``with`` / ``async with`` blocks
    that close it on exit (entering does nothing and is not a checkpoint).
    ``aclose`` is KI-protected. List it before an
    :class:`~shardio.abc.AsyncResource` base, whose abstract ``aclose`` it
    provides. Defines ``__slots__ = ()``.
    """

    __slots__ = ()

    @abstractmethod
    def close(self) -> None:
        """Close the resource now; closing it again does nothing."""

    @enable_ki_protection
    async def aclose(self) -> None:
        """:meth:`close`, then a checkpoint."""
        self.close()
        await checkpoint()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
