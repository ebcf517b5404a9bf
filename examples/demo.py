"""A tour of shardio in one program: a TCP server, its clients, and work on every shard.

Run it from the repository root with ``make tour`` (or ``python -m examples.demo``
once the virtualenv exists). It needs nothing but the loopback interface and
finishes by itself in about five seconds.

The program runs on two shards -- two processes, each pinned to its own CPU
(one shard on a machine with a single CPU). Shard 0 runs ``main``; the server
and its clients live there. The server speaks a tiny line protocol, one request
and one reply per line:

    ECHO <text>              -> <text>
    SLOW <seconds> <text>    -> <text>, after <seconds> (a stand-in for a slow backend)
    BYE                      -> BYE, then the server closes the connection
    anything else            -> ERR unknown command ...

The program runs nine acts, one after the other:

1. The server starts in the background; ``nursery.start()`` returns once it listens.
2. Three clients talk to it at the same time; together they take as long as one.
3. Per-request deadlines: ``move_on_after`` gives up on a slow reply and carries
   on, ``fail_after`` turns the same situation into a ``TooSlowError``.
4. A streaming client is cancelled from outside; it still says goodbye to the
   server, under a shielded cancel scope with a deadline of its own.
5. One client fails; the nursery cancels its siblings and raises an
   ``ExceptionGroup``, which ``except*`` takes apart.
6. CPU-bound work (counting primes) is split over every shard with ``run_on``:
   each shard is its own process, on its own CPU, and they work in parallel.
7. Work started on every shard with ``nursery.start_soon(..., shard=k)`` runs
   under one ``move_on_after``: the deadline stops it on every shard at once.
8. Every shard verifies the checksums of its own data blocks; one finds a
   damaged block, and its exception crosses back to shard 0, cancelling the
   verifiers on the other shards on the way.
9. A stream between shards: the last shard checksums blocks and sends the
   results through a cross-shard channel (``open_channel``) to a slower
   consumer on shard 0; the channel's small buffer holds the producer back.

Everything is real: TCP sockets on 127.0.0.1 (a port the kernel picks), driven by
``shardio.lowlevel.wait_readable`` / ``wait_writable``, processes and CPUs, and
real time: the log shows when each thing happened, in seconds since the start,
and on which shard.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar, TypeVarTuple

import shardio
from shardio import lowlevel

# ---------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------

#: When the program started. Set before ``shardio.run`` forks the shards, so
#: every shard inherits the same value; a global set later, inside ``main``,
#: would exist on shard 0 only (each shard has its own module globals).
_start = time.monotonic()


def log(who: str, message: str) -> None:
    """Print one line: seconds since the start, shard, who is speaking, what happened.

    ``shardio.current_time()`` is CLOCK_MONOTONIC, the same clock in every
    process, so the times of all shards line up. Each shard is a process with
    its own stdout buffer: ``flush=True`` keeps the lines of different shards
    in the order they were printed.
    """
    elapsed = shardio.current_time() - _start
    line = f"{elapsed:6.3f}s  s{shardio.current_shard()}  {who:<12} {message}\n"
    # One write per line, newline included: with PYTHONUNBUFFERED set, print()
    # would write the text and its newline separately, and another shard's line
    # could land between them.
    print(line, end="", flush=True)


def heading(title: str, first: bool = False) -> None:
    print(f"{'' if first else chr(10)}== {title} ==", flush=True)


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


T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def retry_until_ready(
    operation: Callable[[*Ts], T],
    wait: Callable[[socket.socket], Awaitable[None]],
    sock: socket.socket,
    *args: *Ts,
) -> T:
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
    heading("Act 2: three clients at once, each sending three 0.2 s requests")
    started = shardio.current_time()
    async with shardio.open_nursery() as nursery:
        for number in range(1, 4):
            nursery.start_soon(chatty_client, port, f"client-{number}", 3)
    # The block ends only when all three clients have finished.
    elapsed = shardio.current_time() - started
    log("main", f"9 requests of 0.2 s took {elapsed:.2f}s in all (one after another: 1.80s)")


async def act_deadlines(port: int) -> None:
    heading("Act 3: per-request deadlines")
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
    heading("Act 4: cancelling a client from outside")
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
    heading("Act 5: one client fails, its siblings are cancelled")
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
# Acts 6-8: work on every shard
# ---------------------------------------------------------------------------


def describe_shard() -> str:
    """Runs on the shard it is sent to: which process is this, on which CPUs?"""
    cpus = sorted(os.sched_getaffinity(0))
    where = f"pinned to CPU {cpus[0]}" if len(cpus) == 1 else f"free to run on CPUs {cpus}"
    return f"process {os.getpid()} (child of {os.getppid()}), {where}"


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    factor = 3
    while factor * factor <= n:
        if n % factor == 0:
            return False
        factor += 2
    return True


async def count_primes(low: int, high: int) -> int:
    """Count the primes in [low, high): pure-Python CPU work.

    A task that computes never yields by itself. The checkpoint every 64
    numbers (from tens of microseconds of work for small numbers to about a
    millisecond near 10**8) lets the other tasks of this shard run and its
    messages be handled -- and lets a cancellation in.
    """
    who = "primes"
    started = shardio.current_time()
    log(who, f"counting primes in [{low:,}, {high:,})")
    count = 0
    number = low
    try:
        for number in range(low, high):
            if number % 64 == 0:
                await lowlevel.checkpoint()
            if is_prime(number):
                count += 1
    except shardio.Cancelled as cancelled:
        log(who, f"cancelled ({cancelled.source}) at {number:,}, after {count:,} primes")
        raise
    log(who, f"{count:,} primes in [{low:,}, {high:,}), {shardio.current_time() - started:.2f}s")
    return count


async def act_work_on_every_shard() -> None:
    shards = shardio.shard_count()
    heading(f"Act 6: CPU-bound work split over the shards ({shards} here)")
    for shard in range(shards):
        log("main", f"shard {shard} is {await shardio.run_on(shard, describe_shard)}")

    # Two chunks per shard, handed out 0, 1, 1, 0 (for two shards): the
    # higher numbers cost more to test, and this evens out the load.
    limit = 1_200_000
    chunks = 2 * shards
    bounds = [limit * i // chunks for i in range(chunks + 1)]
    owners = [*range(shards), *reversed(range(shards))]
    totals = dict.fromkeys(range(shards), 0)
    cpu_before = [await shardio.run_on(shard, time.process_time) for shard in range(shards)]
    started = shardio.current_time()

    async def count_on(shard: int, low: int, high: int) -> None:
        # run_on returns what count_primes returned on that shard (on shard 0
        # it simply calls it here). Await first, then update: another task
        # may update totals while this one waits.
        count: int = await shardio.run_on(shard, count_primes, low, high)
        totals[shard] += count

    async with shardio.open_nursery() as nursery:
        for i in range(chunks):
            nursery.start_soon(count_on, owners[i], bounds[i], bounds[i + 1])
    elapsed = shardio.current_time() - started
    cpu = [await shardio.run_on(k, time.process_time) - cpu_before[k] for k in range(shards)]
    for shard in range(shards):
        log("main", f"shard {shard} found {totals[shard]:,} primes, using {cpu[shard]:.2f}s of CPU")
    log(
        "main",
        f"{sum(totals.values()):,} primes below {limit:,} in {elapsed:.2f}s: "
        f"{sum(cpu) / elapsed:.1f} CPUs busy on average",
    )


async def act_deadline_on_every_shard() -> None:
    heading("Act 7: one deadline stops the work on every shard")
    # The deadline travels with the work: each shard's task runs under the
    # same CLOCK_MONOTONIC deadline, and is also sent a cancel message when
    # its caller on shard 0 is cancelled. Whichever comes first stops it, so a
    # busy shard may report "remote" where an idle one reports "deadline".
    started = shardio.current_time()
    with shardio.move_on_after(0.4) as scope:
        async with shardio.open_nursery() as nursery:
            for shard in range(shardio.shard_count()):
                # A child of this nursery, running on that shard: the nursery
                # waits for it, and cancels it with the others.
                low = 10**8 * shard
                nursery.start_soon(count_primes, low, low + 10**8, shard=shard)
    log(
        "main",
        f"the block ended after {shardio.current_time() - started:.2f}s "
        f"(cancelled_caught={scope.cancelled_caught}); nothing runs on any shard now",
    )


class DamagedBlock(Exception):
    """A data block whose checksum does not match its contents."""


BLOCK_SIZE = 256 * 1024


def read_block(number: int, damaged: int) -> bytes:
    """Stands in for reading block ``number`` from this shard's disk.

    A block is the SHA-256 checksum of its payload, then the payload. Block
    ``damaged`` got a byte overwritten after it was written. Each shard reads
    its own blocks: the data never crosses shards, only the verdict does.
    """
    payload = hashlib.sha256(b"block %d" % number).digest() * (BLOCK_SIZE // 32)
    checksum = hashlib.sha256(payload).digest()
    if number == damaged:
        payload = b"\xff" + payload[1:]
    return checksum + payload


async def verify_blocks(first: int, count: int, damaged: int) -> None:
    who = "verifier"
    log(who, f"verifying blocks {first}..{first + count - 1}")
    verified = 0
    try:
        for number in range(first, first + count):
            block = read_block(number, damaged)
            if hashlib.sha256(block[32:]).digest() != block[:32]:
                raise DamagedBlock(f"block {number}: checksum mismatch")
            verified += 1
            await lowlevel.checkpoint()
    except shardio.Cancelled as cancelled:
        log(who, f"cancelled ({cancelled.source}) after {verified} good blocks")
        raise
    log(who, f"all {count} blocks are good")


async def act_failure_on_one_shard() -> None:
    heading("Act 8: a damaged block on one shard stops the verifiers on the others")
    shards = shardio.shard_count()
    per_shard = 600
    damaged = (shards - 1) * per_shard + 200  # on the last shard
    try:
        async with shardio.open_nursery() as nursery:
            for shard in range(shards):
                nursery.start_soon(
                    verify_blocks, shard * per_shard, per_shard, damaged, shard=shard
                )
    except* DamagedBlock as group:
        for error in group.exceptions:
            # An exception from another shard keeps its type; its __cause__
            # carries the traceback from the shard where it was raised.
            if isinstance(error.__cause__, shardio.RemoteTraceback):
                origin = str(error.__cause__).splitlines()[0].rstrip(":")
                log("main", f"caught {error!r}, with the {origin} as its __cause__")
            else:
                log("main", f"caught {error!r}, raised on this shard")


# ---------------------------------------------------------------------------
# Act 9: a stream between shards
# ---------------------------------------------------------------------------


async def checksum_blocks(send: shardio.ShardSendChannel[tuple[int, str]], count: int) -> None:
    """Runs on the last shard: checksum ``count`` blocks, send each result to shard 0.

    ``send`` arrived here as an argument: passing a channel end to another shard
    moves it there. Each ``send`` waits while the channel's buffer (on shard 0,
    where it is received) is full, so this producer can never run more than a
    few blocks ahead of its consumer.
    """
    async with send:  # closing the send end ends the consumer's ``async for``
        for number in range(count):
            digest = hashlib.sha256(read_block(number, damaged=-1)).hexdigest()
            await send.send((number, digest[:12]))
            log("checksummer", f"sent block {number}")


async def act_stream_between_shards() -> None:
    last = shardio.shard_count() - 1
    route = f"from shard {last} to shard 0" if last else "between two tasks of shard 0"
    heading(f"Act 9: a stream {route}, through a channel of 3 slots")
    send, receive = shardio.open_channel(3)  # the buffer lives where it is received
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(checksum_blocks, send, 8, shard=last)
        async for number, digest in receive:
            log("main", f"block {number}: sha256 {digest}...; storing it takes 0.1s")
            await shardio.sleep(0.1)  # a slow consumer: the producer has to wait
    stats = receive.statistics()
    log(
        "main",
        f"the stream ended when shard {last} closed its end; at most "
        f"{stats.peak_buffer_used} of {stats.max_buffer_size} slots were ever in use",
    )


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


async def main() -> None:
    heading("Act 1: starting the server", first=True)
    # A safety net: if anything hung, fail loudly after 15 s instead of waiting forever.
    with shardio.fail_after(15):
        async with shardio.open_nursery() as nursery:
            port = await nursery.start(serve)
            log("main", f"server is up on port {port}; the clients can connect")

            await act_concurrent_clients(port)
            await act_deadlines(port)
            await act_cancel_from_outside(port)
            await act_failure_cancels_siblings(port)
            await act_work_on_every_shard()
            await act_deadline_on_every_shard()
            await act_failure_on_one_shard()
            await act_stream_between_shards()

            heading("Finale: shutting the server down")
            # The server runs forever; cancelling the nursery's scope stops it,
            # and every handler still running (the abandoned SLOW 3 requests).
            nursery.cancel_scope.cancel("demo finished")
    log("main", "all tasks have finished; goodbye")


if __name__ == "__main__":
    # Two shards, or one where this process may use a single CPU only: shards
    # are pinned one per CPU, so there cannot be more shards than CPUs.
    shardio.run(main, shards=min(2, len(os.sched_getaffinity(0))))
