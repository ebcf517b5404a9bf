"""A tour of shardio in one program: a real TCP server and its clients.

Run it from the repository root with ``make demo`` (or ``python -m examples.demo``
once the virtualenv exists). It needs nothing but the loopback interface and
finishes by itself in about three seconds.

The server speaks a tiny line protocol, one request and one reply per line:

    ECHO <text>              -> <text>
    SLOW <seconds> <text>    -> <text>, after <seconds> (a stand-in for a slow backend)
    BYE                      -> BYE, then the server closes the connection
    anything else            -> ERR unknown command ...

The program runs five acts, one after the other:

1. The server starts in the background; ``nursery.start()`` returns once it listens.
2. Three clients talk to it at the same time; together they take as long as one.
3. Per-request deadlines: ``move_on_after`` gives up on a slow reply and carries
   on, ``fail_after`` turns the same situation into a ``TooSlowError``.
4. A streaming client is cancelled from outside; it still says goodbye to the
   server, under a shielded cancel scope with a deadline of its own.
5. One client fails; the nursery cancels its siblings and raises an
   ``ExceptionGroup``, which ``except*`` takes apart.

Everything is real: TCP sockets on 127.0.0.1 (a port the kernel picks), driven by
``shardio.lowlevel.wait_readable`` / ``wait_writable``, and real time: the log shows
when each thing happened, in seconds since the start.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

import shardio
from shardio import lowlevel

# ---------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------

_start = 0.0


def log(who: str, message: str) -> None:
    """Print one line: seconds since the start, who is speaking, what happened."""
    print(f"{shardio.current_time() - _start:6.3f}s  {who:<10} {message}", flush=True)


def remaining_budget() -> str:
    """How long the current task may still run, as its cancel scopes say.

    ``current_effective_deadline()`` is the earliest deadline of all the cancel
    scopes around the caller: a function deep down a call stack can see the
    deadline its caller set, without a ``timeout`` parameter being passed down.
    """
    deadline = shardio.current_effective_deadline()
    if deadline == math.inf:
        return "no deadline"
    return f"deadline in {deadline - shardio.current_time():.2f}s"


# ---------------------------------------------------------------------------
# Sockets: non-blocking calls + wait_readable / wait_writable
# ---------------------------------------------------------------------------


async def retry_until_ready(
    operation: Callable[..., Any],
    wait: Callable[[socket.socket], Any],
    sock: socket.socket,
    *args: Any,
) -> Any:
    """Call a non-blocking socket ``operation`` until it stops saying "would block".

    In between, ``wait`` (``wait_readable`` or ``wait_writable``) parks this task
    until the kernel reports the socket ready; meanwhile the other tasks run.

    Like every blocking function in shardio, this is a checkpoint -- even when the
    operation succeeds at once -- but cancellation can strike only *before* the
    operation or while waiting, never after data has moved: a ``Cancelled`` after
    ``recv`` returned would lose the bytes it read. Hence
    ``checkpoint_if_cancelled`` first and ``cancel_shielded_checkpoint`` last.
    """
    await lowlevel.checkpoint_if_cancelled()
    while True:
        try:
            result = operation(*args)
        except BlockingIOError:
            await wait(sock)
        else:
            await lowlevel.cancel_shielded_checkpoint()
            return result


class LineStream:
    """Newline-terminated text over a non-blocking TCP socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buffer = b""

    async def send_line(self, text: str) -> None:
        data = memoryview((text + "\n").encode())
        while data:
            sent = await retry_until_ready(self.sock.send, lowlevel.wait_writable, self.sock, data)
            data = data[sent:]

    async def receive_line(self) -> str | None:
        """The next line without its newline, or ``None`` if the peer closed."""
        while b"\n" not in self._buffer:
            chunk = await retry_until_ready(self.sock.recv, lowlevel.wait_readable, self.sock, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        # Tell the scheduler first, so a task still waiting on this socket is
        # woken (with ClosedResourceError) before the fd number can be reused.
        lowlevel.notify_closing(self.sock)
        self.sock.close()

    def __enter__(self) -> LineStream:
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def connect(port: int) -> LineStream:
    """Open a TCP connection to 127.0.0.1:``port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stream = LineStream(sock)
    try:
        try:
            sock.connect(("127.0.0.1", port))
        except BlockingIOError:
            # The handshake is under way; the socket turns writable when it is done.
            await lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
        else:
            await lowlevel.checkpoint()
    except BaseException:
        stream.close()
        raise
    return stream


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


async def serve(*, task_status: shardio.TaskStatus[int] = shardio.TASK_STATUS_IGNORED) -> None:
    """Accept connections forever, one handler task per connection.

    Meant for ``nursery.start(serve)``: it calls ``task_status.started(port)``
    once it listens, so the caller knows the port and can connect right away.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setblocking(False)
    listener.bind(("127.0.0.1", 0))  # port 0: the kernel picks a free port
    listener.listen()
    port = listener.getsockname()[1]
    accepted = 0
    try:
        # The handlers live in the server's own nursery: when the server is
        # cancelled, so are they, and the server returns only once they are gone.
        async with shardio.open_nursery() as handlers:
            log("server", f"listening on 127.0.0.1:{port}")
            task_status.started(port)
            while True:
                sock, _ = await retry_until_ready(listener.accept, lowlevel.wait_readable, listener)
                accepted += 1
                who = f"handler-{accepted}"
                handlers.start_soon(handle, LineStream(sock), who, name=who)
    finally:
        lowlevel.notify_closing(listener)
        listener.close()
        log("server", f"closed after {accepted} connections")


async def handle(stream: LineStream, who: str) -> None:
    """Serve one connection until the client says BYE or goes away."""
    with stream:
        try:
            while (line := await stream.receive_line()) is not None:
                command, _, argument = line.partition(" ")
                if command == "ECHO":
                    reply = argument
                elif command == "SLOW":
                    seconds, _, reply = argument.partition(" ")
                    await shardio.sleep(float(seconds))
                elif command == "BYE":
                    await stream.send_line("BYE")
                    return
                else:
                    reply = f"ERR unknown command {command}"
                await stream.send_line(reply)
        except OSError:
            # The client vanished mid-request (reset, broken pipe). That ends
            # this connection, and only this one: a handler that let it escape
            # would fail the server's nursery, and with it every connection.
            pass
        except shardio.Cancelled:
            log(who, "cancelled in mid-request: the server is shutting down")
            raise


# ---------------------------------------------------------------------------
# The client side
# ---------------------------------------------------------------------------


class ProtocolError(Exception):
    """The server answered with an error."""


async def request(stream: LineStream, who: str, command: str) -> str:
    """Send one request and wait for its reply."""
    sent_at = shardio.current_time()
    await stream.send_line(command)
    reply = await stream.receive_line()
    if reply is None:
        raise ConnectionError("the server closed the connection")
    if reply.startswith("ERR"):
        raise ProtocolError(reply)
    log(who, f"{command!r} -> {reply!r} in {shardio.current_time() - sent_at:.2f}s")
    return reply


async def chatty_client(port: int, who: str, requests: int) -> None:
    with await connect(port) as stream:
        for number in range(1, requests + 1):
            await request(stream, who, f"SLOW 0.2 {who} says hello #{number}")


async def act_concurrent_clients(port: int) -> None:
    print("\n== Act 2: three clients at once, each sending three 0.2 s requests ==")
    started = shardio.current_time()
    async with shardio.open_nursery() as nursery:
        for number in range(1, 4):
            nursery.start_soon(chatty_client, port, f"client-{number}", 3)
    # The block ends only when all three clients have finished.
    elapsed = shardio.current_time() - started
    log("main", f"9 requests of 0.2 s took {elapsed:.2f}s in all (one after another: 1.80s)")


async def act_deadlines(port: int) -> None:
    print("\n== Act 3: per-request deadlines ==")
    with await connect(port) as stream:
        with shardio.move_on_after(0.5):
            log("impatient", f"asking for a fast reply ({remaining_budget()})")
            await request(stream, "impatient", "SLOW 0.1 quick answer")

        with shardio.move_on_after(0.5) as scope:
            log("impatient", f"asking for a slow reply ({remaining_budget()})")
            await request(stream, "impatient", "SLOW 3 sluggish answer")
        if scope.cancelled_caught:
            log("impatient", "gave up waiting and moved on")
    # The abandoned request is still in flight: its reply would arrive as the
    # answer to the *next* request. After a cancelled request, close the
    # connection (the `with` above did) and start afresh.

    with await connect(port) as stream:
        try:
            with shardio.fail_after(0.3):
                log("strict", f"asking for a slow reply ({remaining_budget()})")
                await request(stream, "strict", "SLOW 3 sluggish answer")
        except shardio.TooSlowError as exc:
            log("strict", f"TooSlowError: {exc}")


async def streaming_client(
    port: int, *, task_status: shardio.TaskStatus[shardio.CancelScope]
) -> None:
    """Ask for ticks until cancelled; hand the caller a scope to cancel us with."""
    with shardio.CancelScope() as scope, await connect(port) as stream:
        task_status.started(scope)
        try:
            for tick in range(1, 1_000):
                await request(stream, "streamer", f"SLOW 0.25 tick {tick}")
        except shardio.Cancelled as cancelled:
            log("streamer", f"cancelled ({cancelled.source}): {cancelled.reason}")
            raise  # always let Cancelled propagate: the scope that was cancelled catches it
        finally:
            # We are cancelled, so any checkpoint here would raise Cancelled at
            # once. A shield lets the goodbye through; its own deadline makes
            # sure a dead server cannot hang us.
            with shardio.move_on_after(1.0, shield=True) as goodbye:
                await stream.send_line("BYE")
                # The reply to the interrupted tick may come first; skip it.
                while (line := await stream.receive_line()) not in ("BYE", None):
                    log("streamer", f"discarding late reply {line!r}")
                log("streamer", "said BYE, the server answered BYE")
            if goodbye.cancelled_caught:
                log("streamer", "the server did not answer BYE in time")
    log("streamer", f"stopped; its scope caught the cancellation: {scope.cancelled_caught}")


async def act_cancel_from_outside(port: int) -> None:
    print("\n== Act 4: cancelling a client from outside ==")
    async with shardio.open_nursery() as nursery:
        scope = await nursery.start(streaming_client, port)
        await shardio.sleep(0.6)
        log("main", "that is enough ticks: cancelling the streamer")
        scope.cancel("the operator has seen enough")


async def steady_client(port: int, who: str) -> None:
    with await connect(port) as stream:
        try:
            for number in range(1, 1_000):
                await request(stream, who, f"SLOW 0.15 {who} #{number}")
        except shardio.Cancelled as cancelled:
            log(who, f"cancelled ({cancelled.source}): {cancelled.reason}")
            raise


async def confused_client(port: int) -> None:
    with await connect(port) as stream:
        await shardio.sleep(0.4)
        log("confused", "sending a command the server does not know")
        await request(stream, "confused", "FROBNICATE now")


async def act_failure_cancels_siblings(port: int) -> None:
    print("\n== Act 5: one client fails, its siblings are cancelled ==")
    try:
        async with shardio.open_nursery() as nursery:
            nursery.start_soon(steady_client, port, "steady-1")
            nursery.start_soon(steady_client, port, "steady-2")
            nursery.start_soon(confused_client, port)
    except* ProtocolError as group:
        # A nursery always raises an ExceptionGroup, even for one error (strict
        # mode). The siblings' Cancelled exceptions are not in it: the nursery's
        # own cancel scope caught them.
        log("main", f"the nursery raised {group!r}")
        for error in group.exceptions:
            log("main", f"  handled {error!r}")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


async def main() -> None:
    global _start
    _start = shardio.current_time()
    print("== Act 1: starting the server ==")
    # A safety net: if anything hung, fail loudly after 10 s instead of waiting forever.
    with shardio.fail_after(10):
        async with shardio.open_nursery() as nursery:
            port = await nursery.start(serve)
            log("main", f"server is up on port {port}; the clients can connect")

            await act_concurrent_clients(port)
            await act_deadlines(port)
            await act_cancel_from_outside(port)
            await act_failure_cancels_siblings(port)

            print("\n== Finale: shutting the server down ==")
            # The server runs forever; cancelling the nursery's scope stops it,
            # and every handler still running (the abandoned SLOW 3 requests).
            nursery.cancel_scope.cancel("demo finished")
    log("main", "all tasks have finished; goodbye")


if __name__ == "__main__":
    shardio.run(main)
