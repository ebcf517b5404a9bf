"""open_tcp_stream: connect to a host by name, racing its addresses (happy eyeballs).

A name often has several addresses, typically an IPv6 and an IPv4 one, and
some of them may not work: a network that drops IPv6 packets makes an
IPv6 connect hang until it times out, tens of seconds later. Trying the
addresses one after the other pays that timeout in full; trying them all at
once loads the server with connections that will be thrown away. Happy
eyeballs (RFC 6555, RFC 8305) is the middle way: start with the first
address; whenever an attempt fails, or has not succeeded within
``happy_eyeballs_delay``, start the next one *as well*; the first attempt
to connect wins, and all the others are cancelled and their sockets
closed. The addresses are first put in an order that alternates families
(RFC 8305, section 4), so that a broken family costs one delay, not one per
address of that family.

The attempts are children of one nursery: the winner cancels the nursery's
scope, which stops the loop that starts attempts and every attempt still
connecting. If every attempt fails, the errors are collected into the
``OSError`` that is raised.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
from contextlib import suppress

import shardio
from shardio import lowlevel

from ._connect import connect
from ._native_route import installed_native_stack, native_address
from ._resolve import AddressInfo, getaddrinfo
from ._socket_stream import SocketStream

__all__ = ["DEFAULT_HAPPY_EYEBALLS_DELAY", "open_tcp_stream"]

#: Seconds an attempt may take before the next address is tried alongside it.
DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25


def interleave_families(targets: list[AddressInfo]) -> list[AddressInfo]:
    """Reorder ``targets`` so that families alternate, starting with the
    family of the first, keeping the order within each family."""
    by_family: dict[int, list[AddressInfo]] = {}
    for target in targets:
        by_family.setdefault(target[0], []).append(target)
    queues = list(by_family.values())
    ordered: list[AddressInfo] = []
    while queues:
        for queue in queues:
            ordered.append(queue.pop(0))
        queues = [queue for queue in queues if queue]
    return ordered


def _format_host_port(host: str | bytes, port: int) -> str:
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


async def open_tcp_stream(
    host: str | bytes,
    port: int,
    *,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    local_address: str | None = None,
) -> SocketStream:
    """Connect to ``host`` (a name, or an IPv4 or IPv6 address) on TCP ``port``.

    The name is resolved without blocking the shard (see
    :func:`getaddrinfo`). If it has several addresses they are tried with
    *happy eyeballs*: one at a time, but an attempt that has neither
    succeeded nor failed after ``happy_eyeballs_delay`` seconds gets the
    next address started alongside it; the first connection wins and the
    other attempts are cancelled. ``happy_eyeballs_delay=None`` waits for
    each attempt to finish before the next (as :func:`socket.create_connection`).

    ``local_address`` binds the connecting socket to that local IP address
    (the port is picked at connect time). An IPv4 ``local_address`` cannot
    reach IPv6 addresses and vice versa; ``"0.0.0.0"`` or ``"::"`` thus
    restrict the connection to one family.

    Returns a connected :class:`SocketStream`. Raises :class:`OSError` if
    every attempt failed; its ``__cause__`` is an :class:`ExceptionGroup` of
    the attempts' errors.

    On a shard whose native stack is installed (``shardio_net.native``) the
    connection is the stack's: IPv4 only, to the name's first IPv4 address
    (so ``happy_eyeballs_delay`` has nothing to do), and ``local_address``
    may only be the stack's own address or ``"0.0.0.0"``.
    """
    native = installed_native_stack()
    if native is not None:
        _check_native_local_address(native.address, local_address)
        address = await native_address(host, port)
        return await native.open_tcp_stream(address, port)  # type: ignore[return-value]
    if not isinstance(host, str | bytes):
        raise ValueError(f"host must be a str or bytes, not {host!r}")
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    delay = math.inf if happy_eyeballs_delay is None else happy_eyeballs_delay
    if not delay >= 0:
        raise ValueError(f"happy_eyeballs_delay must be >= 0 or None, not {delay!r}")
    targets = interleave_families(await getaddrinfo(host, port, type=socket.SOCK_STREAM))
    where = _format_host_port(host, port)
    if not targets:
        raise OSError(f"no addresses found for {where}")

    errors: list[OSError] = []
    sockets: list[socket.socket] = []
    winner: socket.socket | None = None

    async def attempt(target: AddressInfo, failed: shardio.Event) -> None:
        nonlocal winner
        family, kind, proto, _, address = target
        try:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setblocking(False)
            if local_address is not None:
                await _bind_local(sock, local_address, address)
            await connect(sock, address)
        except OSError as exc:
            errors.append(exc)
            failed.set()
            return
        if winner is None:
            winner = sock
            nursery.cancel_scope.cancel("another address connected first")

    try:
        async with shardio.open_nursery() as nursery:
            for target in targets:
                failed = shardio.Event()
                nursery.start_soon(attempt, target, failed)
                with shardio.move_on_after(delay):
                    await failed.wait()
    finally:
        for sock in sockets:
            if sock is not winner:
                lowlevel.notify_closing(sock)
                sock.close()
    if winner is None:
        message = f"all attempts to connect to {where} failed"
        raise OSError(message) from ExceptionGroup(message, errors)
    return SocketStream(winner)


async def _bind_local(sock: socket.socket, local_address: str, remote: object) -> None:
    # Pick the local port at connect() rather than bind(): bind would reserve
    # one for every destination, and run out long before connect would.
    with suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
    try:
        infos = await getaddrinfo(
            local_address, 0, sock.family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        sock.bind(infos[0][4])
    except OSError:
        raise OSError(
            f"local_address={local_address!r} is incompatible with remote address {remote!r}"
        ) from None


def _check_native_local_address(stack_address: int, local_address: str | None) -> None:
    """Refuse a ``local_address`` the native stack cannot send from."""
    if local_address is None:
        return
    try:
        wanted = int(ipaddress.IPv4Address(local_address))
    except ValueError:
        wanted = -1
    if wanted not in (0, stack_address):
        mine = ipaddress.IPv4Address(stack_address) if stack_address else "none yet"
        raise OSError(
            errno.EADDRNOTAVAIL,
            f"cannot connect from {local_address!r}: this shard's native stack sends from "
            f"its own IPv4 address only ({mine}); leave local_address out or give that one",
        )
