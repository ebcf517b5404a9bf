"""The ASGI lifespan protocol, on one shard.

Every shard that serves runs the application's lifespan for itself: the
application is called with a ``lifespan`` scope in a task of the shard's
server, receives ``lifespan.startup`` before the shard accepts a connection,
and ``lifespan.shutdown`` once the shard's last connection is gone. So a
database pool, a cache or a ``sharded`` service opened at startup is opened
once per shard, on that shard, and ``scope["state"]`` (a shallow copy of
what startup put there) reaches that shard's requests.

The lifespan task runs in a shielded cancel scope: Ctrl-C cancels every
task, and the application must still be there to hear ``lifespan.shutdown``
after the connections drain. :meth:`Lifespan.shutdown` cancels the scope
once the application has answered (or if it never will).

``mode`` is uvicorn's: ``"on"`` makes any failure fatal; ``"auto"`` takes
an application that raises before answering startup as one without lifespan
support (logged, and serving goes on); ``"off"`` never calls it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import shardio

from ._app import ASGIApp, Message

__all__ = ["Lifespan", "LifespanFailure"]

LOGGER = logging.getLogger("shardio_net.asgi.error")


class LifespanFailure(Exception):
    """The application's lifespan startup (or, with ``lifespan="on"``, its
    support of the protocol at all) failed on a shard."""


class Lifespan:
    """The lifespan protocol between this shard's server and its application."""

    def __init__(
        self, app: ASGIApp, state: dict[str, Any], mode: Literal["auto", "on", "off"]
    ) -> None:
        self.app = app
        self.state = state
        self.mode = mode
        self._scope = shardio.CancelScope(shield=True)
        self._to_app, self._from_server = shardio.open_memory_channel[Message](2)
        self._startup_answered = shardio.Event()
        self._shutdown_answered = shardio.Event()
        self._startup_failure: str | None = None
        self._shutdown_failure: str | None = None
        self._unsupported = False
        self._finished = shardio.Event()

    async def startup(self, nursery: shardio.Nursery) -> None:
        """Start the application's lifespan task in ``nursery`` and wait for
        its answer to ``lifespan.startup``; raise :class:`LifespanFailure`
        if it failed."""
        if self.mode == "off":
            return
        nursery.start_soon(self._run, name="lifespan")
        await self._to_app.send({"type": "lifespan.startup"})
        await self._startup_answered.wait()
        if self._startup_failure is not None:
            raise LifespanFailure(
                f"lifespan startup failed on shard {shardio.current_shard()}: "
                f"{self._startup_failure}"
            )

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer, then end the
        lifespan task. Call it shielded when the shard is being cancelled."""
        if self.mode == "off":
            return
        try:
            startup_failed = self._startup_failure is not None
            if not (self._unsupported or startup_failed or self._finished.is_set()):
                await self._to_app.send({"type": "lifespan.shutdown"})
                await self._shutdown_answered.wait()
                if self._shutdown_failure is not None:
                    LOGGER.error(
                        "lifespan shutdown failed on shard %d: %s",
                        shardio.current_shard(),
                        self._shutdown_failure,
                    )
        finally:
            self._scope.cancel()
            await self._finished.wait()

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        with self._scope:
            try:
                await self.app(scope, self._receive, self._send)
            except BaseException as exc:
                if isinstance(exc, shardio.Cancelled) and self._scope.cancel_called:
                    raise
                self._failed(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                if not self._startup_answered.is_set():
                    self._failed(None)
            finally:
                self._finished.set()
                self._startup_answered.set()
                self._shutdown_answered.set()

    def _failed(self, exc: BaseException | None) -> None:
        if not self._startup_answered.is_set():
            if self.mode == "auto":
                LOGGER.info(
                    "ASGI 'lifespan' protocol appears unsupported (%r): serving without it", exc
                )
                self._unsupported = True
            else:
                if exc is not None:
                    LOGGER.error("Exception in 'lifespan' protocol", exc_info=exc)
                self._startup_failure = (
                    repr(exc) if exc is not None else "the application returned without answering"
                )
        elif not self._shutdown_answered.is_set() and exc is not None:
            LOGGER.error("Exception in 'lifespan' protocol", exc_info=exc)
            self._shutdown_failure = repr(exc)

    async def _receive(self) -> Message:
        return await self._from_server.receive()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._startup_answered.set()
        elif kind == "lifespan.startup.failed":
            self._startup_failure = message.get("message") or "lifespan.startup.failed"
            self._startup_answered.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_answered.set()
        elif kind == "lifespan.shutdown.failed":
            self._shutdown_failure = message.get("message") or "lifespan.shutdown.failed"
            self._shutdown_answered.set()
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message type {kind!r}")
