"""Zero-copy sends: MSG_ZEROCOPY, its completions, and the lifetime of the buffer.

What the kernel does
--------------------
An ordinary ``send`` copies the caller's bytes into kernel memory and
returns; the caller may reuse its buffer at once. With ``MSG_ZEROCOPY`` (on
a socket with ``SO_ZEROCOPY`` set: TCP or UDP, Linux >= 4.14) the kernel
instead *pins* the pages of the caller's buffer and builds packets that point
into them. ``send`` still returns at once, but the buffer stays in use
until the last packet referring to it is freed -- for TCP, once the peer has
acknowledged the bytes. The kernel says when with a *completion
notification*, queued on the socket's error queue and read with
``recvmsg(MSG_ERRQUEUE)``:

* Every ``send`` call that succeeds with ``MSG_ZEROCOPY`` takes the next
  number of a per-socket 32-bit counter; a call that fails (``EAGAIN``,
  ``ENOBUFS``) takes none. A notification is a ``sock_extended_err`` with
  origin ``SO_EE_ORIGIN_ZEROCOPY`` whose ``ee_info .. ee_data`` is an
  inclusive range of those numbers, now complete. Ranges may be merged, and
  need not arrive in order; each call is reported exactly once. So this
  module does not track numbers, only counts: ``issued`` calls against
  ``completed`` ones. Everything is done when they are equal.
* ``ee_code`` has ``SO_EE_CODE_ZEROCOPY_COPIED`` when the kernel copied the
  data after all: to a loopback or other local peer (it will not let a local
  receiver pin the sender's memory for an unbounded time), or to a device
  without scatter-gather. That deferred copy costs more than an ordinary
  send, so after one such report this stream stops using MSG_ZEROCOPY, as the
  kernel's documentation advises (``msg_zerocopy.rst``).
* Pinning pages and handling a notification cost more than copying a few
  kilobytes (the kernel's figure: worth it above about 10 KB). Only
  ``send_all`` calls of at least ``SocketStream.zerocopy_threshold`` bytes
  (64 KiB by default) use it.

Waiting for completions
-----------------------
A non-empty error queue makes the socket report ``EPOLLERR``. The scheduler
cannot be asked to wait for that alone: ``wait_readable`` and
``wait_writable`` wake on it, but also on data and on buffer space, so a
sender waiting for its completions that way would spin while the socket is
writable -- which is most of the time. So each stream that uses zero-copy
gets a small epoll instance of its own, watching the socket with an *empty*
event mask: epoll always reports ``EPOLLERR`` and ``EPOLLHUP``, so that
instance becomes readable exactly when a completion (or a hang-up) is
pending. The sender parks on it with ``wait_readable`` -- epoll instances
nest -- one-shot, re-armed before every wait. Re-arming checks the socket's
state at once, so a completion that arrived between the last drain and the
wait is not missed.

The scheduler's epoll still sees the socket's ``EPOLLERR``, and wakes the
stream's reader (and writer) with it. Whoever holds the send side drains
the error queue whenever it wakes; when no send is in progress, the receiver
drains it instead. (The receiver must not drain while a sender may be
parked on the private epoll: taking the completions could leave that epoll
with nothing to report, and the sender asleep with no one left to wake it.)
So a completion never sits unread under a task that keeps waking for it.

The buffer's lifetime
---------------------
The pinned pages belong to the kernel until the completion, so memory safety
is not at stake: freeing the Python object cannot make the kernel write
anywhere. The *content* is: if the caller overwrites the buffer before the
completion, the peer may receive the new bytes. Hence the contract:
``send_all`` returns only once every zero-copy send it issued has completed,
and until then the stream holds the caller's memoryviews (which also keeps
a ``bytearray`` from being resized: ``BufferError``).

A ``send_all`` that is cancelled or fails may leave sends outstanding. The
stream keeps holding their views until the completions arrive, drained by
later sends and receives; the caller must not reuse that buffer (the stream
contract already leaves a stream in an unknown state after a cancelled
``send_all``). If the stream is closed with sends still outstanding,
``aclose`` resets the connection (``SO_LINGER`` with a zero timeout): the
kernel drops the unsent queue and unpins the pages, instead of transmitting,
after the close, a buffer the caller may already be overwriting.

Fallbacks: a socket that refuses ``SO_ZEROCOPY`` (Unix-domain, old kernels)
sends by copying, for good. ``ENOBUFS`` from a zero-copy send means the
per-socket allowance for notification state (``net.core.optmem_max``) is
used up: the sender waits for its outstanding completions and retries, or,
with none outstanding, sends the rest of the call by copying.

One consequence for flow control: a zero-copy ``send_all`` returns when the
peer has acknowledged the data, not when it is queued. What can be sent
before the peer reads is its receive window, not that plus our send buffer,
and a task that sends a large buffer and only then reads the answer needs
the peer to read concurrently.
"""

from __future__ import annotations

import os
import select
import socket
import struct

import attrs

import shardio
from shardio import lowlevel

__all__ = ["MSG_ZEROCOPY", "ZeroCopySends"]

# Linux's values (include/uapi/asm-generic/socket.h, linux/socket.h,
# linux/errqueue.h, linux/in.h, linux/in6.h); Python 3.11 names none of them.
SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
_SO_EE_ORIGIN_ZEROCOPY = 5
_SO_EE_CODE_ZEROCOPY_COPIED = 1
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_RECVERR_CMSGS = {(socket.SOL_IP, _IP_RECVERR), (socket.IPPROTO_IPV6, _IPV6_RECVERR)}
# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad,
# ee_info, ee_data.
_EXTENDED_ERR = struct.Struct("=IBBBBII")
# Room for one notification's control message -- the extended error and the
# offender's address, a sockaddr_in6 at most: each recvmsg returns one.
_ANCILLARY_SIZE = socket.CMSG_SPACE(_EXTENDED_ERR.size + 28)


@attrs.define(eq=False, slots=True)
class ZeroCopySends:
    """The zero-copy state of one socket: counts, held views, private epoll.

    Made by :meth:`enable`; closed with the stream.
    """

    sock: socket.socket
    _epoll: select.epoll
    #: Zero-copy send calls that succeeded, and how many have completed.
    issued: int = 0
    completed: int = 0
    #: Completions in which the kernel reported having copied after all.
    copied: int = 0
    #: False once the kernel has copied: MSG_ZEROCOPY buys nothing here.
    useful: bool = True
    # The callers' views, held until every send issued so far has completed:
    # added with a send, never before (a drain could release them early).
    _held: list[memoryview] = attrs.field(factory=list)

    @classmethod
    def enable(cls, sock: socket.socket) -> ZeroCopySends | None:
        """Turn on ``SO_ZEROCOPY`` for ``sock``; ``None`` if it is refused."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
        except OSError:
            return None
        epoll = select.epoll()
        try:
            # No event bits: only EPOLLERR / EPOLLHUP, which epoll always reports.
            epoll.register(sock.fileno(), select.EPOLLONESHOT)
        except BaseException:
            epoll.close()
            raise
        return cls(sock, epoll)

    @property
    def outstanding(self) -> int:
        """Zero-copy sends whose buffers the kernel may still be using."""
        return self.issued - self.completed

    def record_send(self, views: list[memoryview]) -> None:
        """Count one successful zero-copy send call, and keep ``views`` (the
        caller's data) alive until every send counted so far has completed."""
        self.issued += 1
        self._held.extend(views)

    def drain(self) -> bool:
        """Read every notification in the error queue, without blocking.

        Returns whether any send completed.
        """
        before = self.completed
        recvmsg = self.sock.recvmsg
        while True:
            try:
                _, ancillary, _, _ = recvmsg(0, _ANCILLARY_SIZE, socket.MSG_ERRQUEUE)
            except BlockingIOError:
                break
            for level, kind, data in ancillary:
                if (level, kind) not in _RECVERR_CMSGS or len(data) < _EXTENDED_ERR.size:
                    continue
                _, origin, _, code, _, first, last = _EXTENDED_ERR.unpack_from(data)
                if origin != _SO_EE_ORIGIN_ZEROCOPY:
                    continue
                count = ((last - first) & 0xFFFFFFFF) + 1
                self.completed += count
                if code & _SO_EE_CODE_ZEROCOPY_COPIED:
                    self.copied += count
                    self.useful = False
        if self.completed == self.issued and self._held:
            for view in self._held:
                view.release()
            self._held.clear()
        return self.completed != before

    async def wait(self) -> bool:
        """Block until every zero-copy send issued on the socket has completed.

        Returns whether it had to wait (only then is it a checkpoint). Raises
        :class:`OSError` (or :class:`~shardio.BrokenResourceError`) if the
        connection fails first, :class:`~shardio.ClosedResourceError` if the
        stream is closed meanwhile.
        """
        fd = self.sock.fileno()
        waited = False
        while True:
            self.drain()
            if not self.outstanding:
                return waited
            self._epoll.modify(fd, select.EPOLLONESHOT)
            waited = True
            await lowlevel.wait_readable(self._epoll)
            events = self._epoll.poll(0)
            if self.drain() or not events:
                continue
            # Woken by an error or a hang-up, and nothing completed: do not
            # wait again for a state that would wake us at once.
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))
            if events[0][1] & select.EPOLLHUP:
                raise shardio.BrokenResourceError(
                    "the connection closed while zero-copy sends were outstanding"
                )

    def close(self) -> None:
        """Drop the private epoll and the held views (the kernel keeps the pages)."""
        lowlevel.notify_closing(self._epoll)
        self._epoll.close()
        for view in self._held:
            view.release()
        self._held.clear()
