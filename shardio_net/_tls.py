"""TLS over any shardio stream: :class:`TLSStream` and :class:`TLSListener`.

How it works
============

The standard library's :class:`ssl.SSLObject` is OpenSSL with its I/O cut
off: it reads ciphertext from one in-memory buffer (a :class:`ssl.MemoryBIO`,
"incoming") and writes ciphertext to another ("outgoing"), and never touches
a socket. Each of its four operations -- ``do_handshake``, ``write``,
``read``, ``unwrap`` (which sends ``close_notify``) -- may append to the
outgoing buffer, may consume from the incoming one, and may stop half-way
with :class:`ssl.SSLWantReadError`: "I need more ciphertext from the peer;
call me again, with the same arguments, once you have it". (Its twin,
``SSLWantWriteError``, cannot happen: a memory buffer always takes more.)

So one engine, :meth:`TLSStream._drive`, turns any of the four into an async
call. It loops: call the operation; if it produced ciphertext, send that on
the transport; else, if it wants ciphertext, receive some from the transport
into the incoming buffer; stop once the operation succeeded *and* its output
is on the wire. Any operation can need both directions: a ``read`` can have
to send (a TLS 1.3 key update asks for an answer; TLS 1.2 renegotiation
asks for a whole handshake), a ``write`` can have to receive. The engine
never assumes which.

Full duplex
-----------

One task may send while another receives, so two engines can run at once,
and both may want the *transport's* send or receive side. Three rules keep
them apart:

* **Nothing yields between using the SSLObject and queueing for the
  transport.** The SSLObject is shared state; each engine step calls it
  synchronously, takes its output, and only then awaits.
* **Ciphertext goes out in the order it left the outgoing buffer.** The
  transport's send side is guarded by a :class:`shardio.StrictFIFOLock`, and
  an engine queues on it immediately after reading the buffer, so the
  queue order is the buffer order.
* **Only one task receives from the transport, and a task that waited for
  the receive lock while another received first does not receive again.**
  What the other task brought may be exactly what it needed (a count of
  receives tells it), and receiving again could wait forever for data the
  peer will never send.

Cancellation and failure
------------------------

An operation checks for cancellation before it touches the SSLObject, so a
cancellation that strikes *before* any ciphertext moved leaves the stream
intact. A cancellation (or an error) while ciphertext is being sent leaves
an unknown part of a TLS record on the wire: the stream is then *broken*,
and every later operation raises :class:`~shardio.BrokenResourceError`.
Being cancelled while receiving ciphertext loses nothing. Errors from
OpenSSL (a bad certificate, a corrupt record) break the stream too, and
arrive as :class:`~shardio.BrokenResourceError` with the
:class:`ssl.SSLError` as ``__cause__``; the alert OpenSSL wrote for the
peer is sent first, if the transport takes it promptly, so that the peer
learns why instead of waiting.

Two OpenSSL details
-------------------

* The handshake always runs through ``do_handshake`` before the first
  ``read`` or ``write``: OpenSSL would do it implicitly, but then Python's
  hostname check would be skipped.
* A TLS 1.3 server's handshake ends by writing session tickets, which the
  client is not waiting for. Sending them at once could block a server on a
  client that is not reading (on an unbuffered transport) and, if the client
  closes without reading them, turn its close into a reset that destroys
  data. So they are held back and sent in front of the server's next
  ciphertext, as BoringSSL does.
"""

from __future__ import annotations

import enum
import operator
import ssl
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, final, overload

from shardio import (
    BrokenResourceError,
    BusyResourceError,
    ClosedResourceError,
    Event,
    Lock,
    StrictFIFOLock,
    aclose_forcefully,
    move_on_after,
)
from shardio.abc import Listener, Stream
from shardio.lowlevel import (
    ConflictDetector,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["NeedHandshakeError", "TLSListener", "TLSStream"]

T = TypeVar("T")
TransportT = TypeVar("TransportT", bound=Stream)

# How much plaintext receive_some() asks OpenSSL for when given no size: at
# least this, or the largest chunk the transport has delivered so far
# (ciphertext is a little larger than the plaintext it carries, so that is a
# slight over-estimate, which is what we want). A TCP initial window of ten
# 1500-byte segments fits under it.
_INITIAL_RECEIVE_SIZE = 16384
# send_all hands OpenSSL at most this much plaintext at a time, so a large
# send does not hold its whole ciphertext in memory at once.
_SEND_CHUNK = 65536
# How long a failing operation tries to send OpenSSL's alert to the peer.
_ALERT_TIMEOUT = 1.0


class NeedHandshakeError(Exception):
    """Raised by a :class:`TLSStream` method that describes the connection
    (the peer's certificate, the cipher, the ALPN protocol, ...) when it is
    called before the handshake has completed, since there is nothing to
    describe yet. Call :meth:`TLSStream.do_handshake` first."""


class _State(enum.Enum):
    OPEN = "open"
    BROKEN = "broken"
    CLOSED = "closed"


def _is_transport_eof(error: BaseException | None) -> bool:
    """Whether OpenSSL's ``error`` means the transport ended without a
    ``close_notify`` (a "ragged" EOF), which OpenSSL reports either way."""
    return isinstance(error, ssl.SSLEOFError | ssl.SSLSyscallError)


@final
class TLSStream(Stream, Generic[TransportT]):
    """Encrypted communication over another stream, with TLS.

    Plaintext given to :meth:`send_all` goes out encrypted on
    ``transport_stream``; :meth:`receive_some` decrypts what arrives there.
    The handshake happens on first use, or when :meth:`do_handshake` is
    called. One task may send while another receives.

    ``ssl_context`` configures the connection (usually from
    :func:`ssl.create_default_context`). ``server_side`` picks the role. A
    client should pass ``server_hostname``: it is sent for SNI and, when the
    context checks hostnames (the default), verified against the server's
    certificate.

    ``https_compatible``: TLS marks a deliberate end of the connection with
    a signed ``close_notify``, so that an attacker who cuts the transport
    cannot pass off a truncated stream as complete. By default, this stream
    sends one on :meth:`aclose` and treats a transport that ends without one
    as broken (:class:`~shardio.BrokenResourceError`). Much of the HTTPS world
    skips ``close_notify`` (HTTP frames its own messages); with
    ``https_compatible=True`` the stream neither sends one nor requires one:
    a bare transport end-of-file is a plain end-of-file.

    If an operation is cancelled while ciphertext is moving, or fails, the
    stream is broken: later operations raise
    :class:`~shardio.BrokenResourceError`, and :meth:`aclose` only closes the
    transport.

    The attributes and methods that describe the connection pass through to
    the underlying :class:`ssl.SSLObject`; those that only mean something
    after the handshake raise :class:`NeedHandshakeError` before it.
    """

    __slots__ = (
        "_handshake_done",
        "_handshake_ok",
        "_handshake_started",
        "_held_back",
        "_https_compatible",
        "_incoming",
        "_outgoing",
        "_peer_eof",
        "_receive_size",
        "_receiver",
        "_receives_done",
        "_sender",
        "_ssl",
        "_state",
        "_transport_receive_lock",
        "_transport_send_lock",
        "transport_stream",
    )

    def __init__(
        self,
        transport_stream: TransportT,
        ssl_context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        https_compatible: bool = False,
    ) -> None:
        #: The stream that carries the ciphertext.
        self.transport_stream: TransportT = transport_stream
        self._https_compatible = https_compatible
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = ssl_context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._state = _State.OPEN
        self._peer_eof = False
        self._handshake_started = False
        self._handshake_ok = False
        self._handshake_done = Event()
        self._held_back = b""
        self._transport_send_lock = StrictFIFOLock()
        self._transport_receive_lock = Lock()
        self._receives_done = 0
        self._receive_size = _INITIAL_RECEIVE_SIZE
        self._sender = ConflictDetector("another task is already sending on this TLSStream")
        self._receiver = ConflictDetector("another task is already receiving on this TLSStream")

    def __repr__(self) -> str:
        return f"<shardio_net.TLSStream ({self._state.value}) over {self.transport_stream!r}>"

    # -- state --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClosedResourceError("this TLSStream was closed")
        if self._state is _State.BROKEN:
            raise BrokenResourceError(
                "this TLSStream is broken, by an earlier error or a cancelled operation"
            )

    def _mark_broken(self) -> None:
        if self._state is _State.OPEN:
            self._state = _State.BROKEN

    # -- the engine ---------------------------------------------------------

    async def _drive(
        self,
        operation: Callable[..., T],
        *args: Any,
        handshake: bool = False,
        stop_at_want_read: bool = False,
    ) -> T | None:
        """Run one SSLObject operation to completion, moving ciphertext to
        and from the transport as it asks (see the module docstring).

        A checkpoint. Returns the operation's result; ``None`` if
        ``stop_at_want_read`` let it end on a want-read.
        """
        await checkpoint_if_cancelled()
        yielded = False
        while True:
            result: T | None = None
            want_read = False
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                want_read = True
            except ssl.SSLError as error:
                self._mark_broken()
                await self._send_alert()
                raise BrokenResourceError(f"TLS error: {error}") from error
            done = not want_read or stop_at_want_read
            ciphertext = self._outgoing.read()
            if handshake and done and self._ssl.server_side and self._ssl.version() == "TLSv1.3":
                self._held_back += ciphertext
                ciphertext = b""
            if ciphertext:
                await self._send_ciphertext(ciphertext)
                yielded = True
            elif not done:
                await self._receive_ciphertext()
                yielded = True
            if done:
                break
        if not yielded:
            await cancel_shielded_checkpoint()
        return result

    async def _send_ciphertext(self, ciphertext: bytes) -> None:
        # Queue for the lock at once: the queue order is the order in which
        # ciphertext left the outgoing buffer, which is the order the peer
        # must receive it in.
        try:
            async with self._transport_send_lock:
                if self._held_back:
                    ciphertext = self._held_back + ciphertext
                    self._held_back = b""
                await self.transport_stream.send_all(ciphertext)
        except BaseException as error:
            # Part of a record may be on the wire: there is no recovering.
            self._mark_broken()
            if self._state is _State.CLOSED and isinstance(error, BrokenResourceError):
                raise ClosedResourceError("this TLSStream was closed") from error
            raise

    async def _send_alert(self) -> None:
        """Send what OpenSSL wrote as it failed: an alert that tells the
        peer why, so that it fails with a reason instead of waiting.

        Best effort, since the stream is broken anyway: not if another task
        is sending, and not for longer than :data:`_ALERT_TIMEOUT` (a peer
        that does not read must not turn our error into a hang).
        """
        alert = self._outgoing.read()
        if alert and not self._transport_send_lock.locked():
            with (
                move_on_after(_ALERT_TIMEOUT),
                suppress(BrokenResourceError, ClosedResourceError, BusyResourceError),
            ):
                async with self._transport_send_lock:
                    await self.transport_stream.send_all(alert)

    async def _receive_ciphertext(self) -> None:
        receives_seen = self._receives_done
        async with self._transport_receive_lock:
            if receives_seen != self._receives_done:
                return  # another task received meanwhile: retry with its data first
            try:
                data = await self.transport_stream.receive_some()
            except BrokenResourceError as error:
                if self._state is _State.CLOSED:
                    raise ClosedResourceError("this TLSStream was closed") from error
                raise
            if data:
                self._incoming.write(data)
                self._receive_size = max(self._receive_size, len(data))
            else:
                self._incoming.write_eof()
            self._receives_done += 1

    async def _ensure_handshake(self) -> None:
        """Complete the handshake, or wait for the task doing it. Not a
        checkpoint if it was already done."""
        if self._handshake_ok:
            return
        if self._handshake_started:
            await self._handshake_done.wait()
            self._check_open()
            return
        # A cancellation before the first step must not break the stream.
        await checkpoint_if_cancelled()
        self._handshake_started = True
        try:
            await self._drive(self._ssl.do_handshake, handshake=True)
        except BaseException:
            self._mark_broken()
            raise
        else:
            self._handshake_ok = True
        finally:
            self._handshake_done.set()

    # -- the stream interface ---------------------------------------------

    async def do_handshake(self) -> None:
        """Complete the TLS handshake, if it has not been completed yet.

        Not needed to send or receive (they do it on first use); useful to
        look at the peer's certificate or the negotiated protocol before
        talking. If another task is doing the handshake, this waits for it.
        A checkpoint, even if the handshake was done already.
        """
        self._check_open()
        if self._handshake_ok:
            await checkpoint()
            return
        await self._ensure_handshake()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and send it on the transport.

        See :meth:`shardio.abc.SendStream.send_all`. A cancelled
        ``send_all`` may leave the stream broken.
        """
        with self._sender:
            self._check_open()
            await self._ensure_handshake()
            with memoryview(data) as given, given.cast("B") as view:
                if not view.nbytes:
                    # SSLObject.write(b"") would mean something else entirely.
                    await checkpoint()
                    return
                for start in range(0, view.nbytes, _SEND_CHUNK):
                    await self._drive(self._ssl.write, view[start : start + _SEND_CHUNK])

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the transport might take a ``send_all`` without blocking.

        See :meth:`shardio.abc.SendStream.wait_send_all_might_not_block`.
        """
        with self._sender:
            self._check_open()
            # The receive side may be sending handshake or key-update
            # ciphertext on the transport; wait our turn rather than collide
            # with it (that is our business, not the caller's).
            async with self._transport_send_lock:
                await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive and decrypt some data: between 1 and ``max_bytes`` bytes,
        or ``b""`` at the end of the stream.

        The end is a ``close_notify`` from the peer; without
        ``https_compatible``, a transport that ends without one raises
        :class:`~shardio.BrokenResourceError`. See
        :meth:`shardio.abc.ReceiveStream.receive_some`.
        """
        with self._receiver:
            if max_bytes is not None:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError(f"max_bytes must be >= 1, not {max_bytes}")
            if await self._at_eof():
                return b""
            if max_bytes is None:
                max_bytes = max(self._receive_size, self._incoming.pending)
            data = await self._read(self._ssl.read, max_bytes)
            return data if data is not None else b""

    async def receive_into(self, buffer: Buffer) -> int:
        """Receive and decrypt data straight into ``buffer`` (any writable
        bytes-like object); return how many bytes were written, between 1
        and the buffer's size, or 0 at the end of the stream.

        Like :meth:`receive_some`, without allocating a new bytes object for
        each call. An empty buffer is a :class:`ValueError`.
        """
        with self._receiver:
            with memoryview(buffer) as view:
                size = view.nbytes
            if not size:
                raise ValueError("receive_into needs a non-empty buffer")
            if await self._at_eof():
                return 0
            ssl_object = self._ssl

            def read_into() -> int:
                # Given a buffer, read() returns a count (typeshed says bytes).
                return cast(int, ssl_object.read(size, buffer))

            count = await self._read(read_into)
            return count if count is not None else 0

    async def _at_eof(self) -> bool:
        """Whether the stream already ended (then a checkpoint); raises if
        it is closed or broken; otherwise completes the handshake."""
        if self._peer_eof and self._state is not _State.CLOSED:
            await checkpoint()
            return True
        self._check_open()
        try:
            await self._ensure_handshake()
        except BrokenResourceError as error:
            if self._https_compatible and _is_transport_eof(error.__cause__):
                self._peer_eof = True
                await checkpoint()
                return True
            raise
        return False

    async def _read(self, read: Callable[..., T], *args: Any) -> T | None:
        try:
            return await self._drive(read, *args)
        except BrokenResourceError as error:
            # The stream is marked broken (sending is over), but for an
            # HTTPS-style peer a bare end-of-file is a normal end.
            if self._https_compatible and _is_transport_eof(error.__cause__):
                self._peer_eof = True
                await checkpoint()
                return None
            raise

    async def unwrap(self) -> tuple[TransportT, bytes]:
        """End TLS cleanly (send ``close_notify``, wait for the peer's) and
        hand back the transport, to go on unencrypted.

        Returns ``(transport_stream, trailing_bytes)``: bytes that already
        arrived after the peer's ``close_notify``, to be treated as the first
        unencrypted data received. This stream is closed afterwards (closing
        it does not close the transport). Rarely needed.
        """
        with self._receiver, self._sender:
            self._check_open()
            await self._ensure_handshake()
            await self._drive(self._ssl.unwrap)
            self._state = _State.CLOSED
            return self.transport_stream, self._incoming.read()

    async def aclose(self) -> None:
        """Close the stream and its transport.

        Unless ``https_compatible``, first send a ``close_notify`` (doing the
        handshake first, if it was never done), without waiting for the
        peer's. Cancelled, or if that fails, it still closes the transport,
        forcefully. Closing twice does nothing.
        """
        if self._state is _State.CLOSED:
            await checkpoint()
            return
        if self._state is _State.BROKEN or self._https_compatible:
            self._state = _State.CLOSED
            await self.transport_stream.aclose()
            return
        try:
            await self._ensure_handshake()
            # One SSL_shutdown: it writes our close_notify, then wants to
            # read the peer's; we do not wait for it (a peer that is only
            # sending might never read ours, and the TLS specification
            # allows closing at once). The peer may also have closed
            # already, so a broken transport here is normal; and a transport
            # busy with another task's operation means no graceful close.
            with suppress(BrokenResourceError, BusyResourceError):
                await self._drive(self._ssl.unwrap, stop_at_want_read=True)
        except BaseException:
            self._state = _State.CLOSED
            await aclose_forcefully(self.transport_stream)
            raise
        self._state = _State.CLOSED
        await self.transport_stream.aclose()

    # -- what the SSLObject knows -------------------------------------------

    def _after_handshake(self, name: str) -> ssl.SSLObject:
        if not self._handshake_ok:
            raise NeedHandshakeError(f"call do_handshake() before {name}()")
        return self._ssl

    @property
    def context(self) -> ssl.SSLContext:
        """The :class:`ssl.SSLContext` this connection uses."""
        return self._ssl.context

    @property
    def server_side(self) -> bool:
        """Whether this end is the TLS server."""
        return self._ssl.server_side

    @property
    def server_hostname(self) -> str | None:
        """The hostname the client asked for (``None`` on a server, or if
        none was given)."""
        return self._ssl.server_hostname

    @property
    def session(self) -> ssl.SSLSession | None:
        """The TLS session, to resume it on a later connection (client side:
        assign it before the handshake)."""
        return self._ssl.session

    @session.setter
    def session(self, value: ssl.SSLSession) -> None:
        self._ssl.session = value

    @property
    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session."""
        return self._after_handshake("session_reused").session_reused

    @overload
    def getpeercert(self, binary_form: Literal[False] = False) -> dict[str, Any] | None: ...
    @overload
    def getpeercert(self, binary_form: Literal[True]) -> bytes | None: ...
    @overload
    def getpeercert(self, binary_form: bool) -> dict[str, Any] | bytes | None: ...
    def getpeercert(self, binary_form: bool = False) -> dict[str, Any] | bytes | None:
        """The peer's certificate, as :meth:`ssl.SSLSocket.getpeercert`
        returns it."""
        return self._after_handshake("getpeercert").getpeercert(binary_form)

    def selected_alpn_protocol(self) -> str | None:
        """The protocol ALPN settled on, or ``None``."""
        return self._after_handshake("selected_alpn_protocol").selected_alpn_protocol()

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol version, secret bits)`` of the cipher in use."""
        return self._after_handshake("cipher").cipher()

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        """The ciphers both ends offered (server side only)."""
        return self._after_handshake("shared_ciphers").shared_ciphers()

    def compression(self) -> str | None:
        """The compression in use, or ``None``."""
        return self._after_handshake("compression").compression()

    def version(self) -> str | None:
        """The TLS version negotiated, such as ``"TLSv1.3"``."""
        return self._after_handshake("version").version()

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        """Channel binding data for ``cb_type`` (see
        :meth:`ssl.SSLSocket.get_channel_binding`)."""
        return self._after_handshake("get_channel_binding").get_channel_binding(cb_type)

    def verify_client_post_handshake(self) -> None:
        """Ask the client for its certificate now, after the handshake (TLS
        1.3 post-handshake authentication; server side).

        The request goes out with this stream's next ``send_all``; the
        client answers while it receives, and once this stream has received
        the answer, :meth:`getpeercert` returns the client's certificate.
        Both contexts need ``post_handshake_auth = True``, and this one a
        ``verify_mode`` other than ``CERT_NONE``; otherwise, or before TLS
        1.3, :class:`ssl.SSLError` is raised.
        """
        self._after_handshake("verify_client_post_handshake").verify_client_post_handshake()

    def pending(self) -> int:
        """How many decrypted bytes are ready to receive without waiting."""
        return self._ssl.pending()


@final
class TLSListener(Listener[TLSStream[TransportT]], Generic[TransportT]):
    """A :class:`~shardio.abc.Listener` whose connections speak TLS.

    Each connection ``transport_listener`` accepts is wrapped in a
    server-side :class:`TLSStream` with ``ssl_context`` and
    ``https_compatible``. The handshake happens on the stream's first use
    (or its ``do_handshake()``), in the task that handles the connection, so
    a slow client never holds up ``accept``.
    """

    __slots__ = ("_https_compatible", "_ssl_context", "transport_listener")

    def __init__(
        self,
        transport_listener: Listener[TransportT],
        ssl_context: ssl.SSLContext,
        *,
        https_compatible: bool = False,
    ) -> None:
        #: The listener that accepts the connections this one wraps.
        self.transport_listener = transport_listener
        self._ssl_context = ssl_context
        self._https_compatible = https_compatible

    async def accept(self) -> TLSStream[TransportT]:
        """Accept the next connection, wrapped in a server-side :class:`TLSStream`."""
        transport = await self.transport_listener.accept()
        return TLSStream(
            transport,
            self._ssl_context,
            server_side=True,
            https_compatible=self._https_compatible,
        )

    async def aclose(self) -> None:
        """Close the transport listener."""
        await self.transport_listener.aclose()
