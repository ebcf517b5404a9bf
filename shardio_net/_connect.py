"""Connecting a non-blocking socket without blocking the shard."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import shardio
from shardio import lowlevel

__all__ = ["connect"]

# A Unix-domain connect to a listener whose backlog is full fails with EAGAIN
# and leaves the socket unconnected (unlike TCP's EINPROGRESS, there is no
# connection in progress to wait for), and the socket reports itself writable
# all the while. So it is retried after a pause, growing up to this.
_UNIX_RETRY_MAX_PAUSE = 0.05


async def connect(sock: socket.socket, address: Any) -> None:
    """Connect the non-blocking ``sock`` to ``address``; a checkpoint.

    Raises :class:`OSError` (of the subclass its errno maps to, such as
    :class:`ConnectionRefusedError`) naming ``address`` if the connection
    fails. On cancellation the socket is left half-connected: the caller
    closes it.
    """
    await lowlevel.checkpoint_if_cancelled()
    pause = 0.001
    while True:
        try:
            sock.connect(address)
        except BlockingIOError as exc:
            if exc.errno != errno.EAGAIN or sock.family != socket.AF_UNIX:
                break  # EINPROGRESS: the handshake goes on in the kernel
            await shardio.sleep(pause)
            pause = min(pause * 2, _UNIX_RETRY_MAX_PAUSE)
        except OSError as exc:
            raise OSError(exc.errno, f"error connecting to {address!r}: {exc.strerror}") from None
        else:
            await lowlevel.cancel_shielded_checkpoint()
            return
    await lowlevel.wait_writable(sock)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, f"error connecting to {address!r}: {os.strerror(error)}")
