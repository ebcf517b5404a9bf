"""NativeStack: one TCP/IP stack, a service of the shard it runs on.

A stack owns a device, an interface (ARP, IPv4, ICMP: ``iface/``), and the
TCP connections, listeners and UDP ports of one address. It runs as one
system task of its shard -- the *pump* -- which outlives the user's tasks at
the end of a run (system tasks are cancelled last), so a ``finally`` that
sends a goodbye on a native stream still has its stack.

The pump
--------
Each pass of the pump does, in order:

1. ``device.receive(now)``: every frame that arrived; each goes through the
   interface, and what it hands up (a TCP segment, a UDP datagram) to its
   connection, listener or port -- or is answered with a RST or an ICMP
   port unreachable when nothing listens there;
2. timers: every connection whose deadline passed gets ``on_timer``, and
   the interface's own (ARP retries, reassembly timeouts);
3. flush: every connection touched in this pass -- by a segment, a timer,
   or a user task that sent, read or closed -- is drained once:
   ``segments_to_send`` (written as header + payload parts), then
   ``events`` (which wake the tasks waiting on its stream); then the
   interface's frames go to the device in one ``transmit``;
4. sleep in ``DeviceWaiter.wait`` until a frame arrives, the earliest timer
   of the stack is due, or a user task calls for a pass.

So a burst of frames is one pass, and the ACKs and data it provokes leave
in one transmit; a user task's ``send_all`` costs no pass of its own, it
wakes the pump, which sends what every task queued since the last pass.

Timers
------
One deadline per stack, not a task or a timer per connection: a heap of
(deadline, sequence, stream). A connection's deadline moves at almost every
segment -- the retransmission timer is armed when data leaves and cleared or
pushed back by each ACK, the delayed-ACK timer armed and cleared -- so the
heap is kept *lazily*: a flush pushes an entry only when the connection's
``next_deadline()`` is *earlier* than the entry it has in the heap
(``stream.timer``; ``inf``: none). A deadline that moved later, or went
away, costs nothing then; when the entry comes up, the pump asks the
connection again, and re-arms it at its real deadline if that is still to
come instead of calling ``on_timer`` (as Linux's keepalive timer, which
segments do not move: when it fires it checks how long the connection has
really been idle, and re-arms for the rest). An entry superseded by an
earlier one is skipped when it comes up (its deadline is not
``stream.timer``). So a request/response connection pushes about one entry
per retransmission timeout instead of several per exchange, and the pump
wakes at most once per such entry for nothing. The pump sleeps until the
heap's top, the interface's deadline, or the device's.

No address yet, and DHCP
------------------------
``NativeStack(device, None)`` has no address: its interface sends only to
255.255.255.255 from 0.0.0.0 and takes only UDP (``iface/interface.py``,
"No address yet") -- what a DHCP client needs and nothing more. Listeners
and UDP ports may be opened; connecting waits for an address (it is refused
until then). :meth:`NativeStack.configure` gives the stack its address,
prefix and gateway, changes them or takes them away; :meth:`NativeStack.dhcp`
runs a DHCP client that does so with each lease (``_dhcp.py``). A new
address resets the connections of the old one (the RSTs leave from the old
address first, as the last thing it sends) and moves the listeners to it.

Nothing a peer sends raises out of here: malformed frames are counted by
the interface, the connections never raise on peer input. A bug that
raises anyway while handling a frame is logged (``shardio_net.native``)
and counted, and the pump goes on: one bad frame must not take down the
shard's network.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, final

import attrs

import shardio
from shardio import TASK_STATUS_IGNORED, TaskStatus, lowlevel
from shardio.abc import Listener

from .._serve import serve_listeners
from ._dhcp import DhcpService, OnChange
from ._listener import NativeListener
from ._on_shards import ShardGroup
from ._stream import NativeStream
from ._udp import DEFAULT_RECEIVE_QUEUE, NativeUDPSocket
from .dhcp.client import DhcpConfig, Lease
from .iface import IcmpErrorIngress, Interface, InterfaceConfig, TcpIngress, UdpIngress
from .phy.device import Device
from .phy.pcap import PcapWriter
from .phy.waiter import DeviceWaiter
from .tcp.config import TcpConfig
from .tcp.connection import TcpConnection, TcpState
from .tcp.isn import IsnGenerator
from .tcp.listener import TcpListener
from .tcp.reset import reset_for
from .wire.ipv4 import format_address, parse_address
from .wire.tcp import SYN, TcpSegment, tcp_header
from .wire.udp import UdpDatagram, udp_header

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Capture", "NativeStack", "StackStatistics"]

LOGGER = logging.getLogger("shardio_net.native")

_TCP = 6
# An IPv4 header and the longest TCP header, options included.
_LARGEST_HEADERS = 20 + 60
_UDP = 17
#: Linux's default ephemeral range (net.ipv4.ip_local_port_range).
EPHEMERAL_PORTS = (32768, 60999)


@attrs.frozen
class StackStatistics:
    """What :meth:`NativeStack.statistics` reports."""

    address: str
    #: Connections by state name (``"ESTABLISHED"``, ``"TIME_WAIT"``...).
    connections: dict[str, int]
    listeners: int
    udp_sockets: int
    #: Segments to a port nobody listens on (each answered with a RST).
    tcp_closed_port: int
    #: UDP datagrams to a port nobody has open (answered with ICMP unreachable).
    udp_closed_port: int
    #: Passes of the pump, and frames it received and transmitted.
    passes: int
    frames_received: int
    frames_transmitted: int
    #: Frames whose handling raised (a bug, logged): dropped.
    internal_errors: int
    #: Frames sent to the shard that owns their connection, and received so.
    forwarded: int
    injected: int
    #: The interface's figures (ARP, IPv4, ICMP, drops per reason).
    interface: Any
    #: The device's figures.
    device: Any


@final
class NativeStack:
    """A userspace TCP/IP stack on ``device``, with IPv4 ``address``
    (``None``: none yet -- see :meth:`configure` and :meth:`dhcp`).

    Must be made inside a run: it starts its pump as a system task of the
    current shard, and lives as long as the run (or until :meth:`close`).
    ``prefix_length`` and ``gateway`` describe the one subnet and the way
    out of it; ``tcp`` is the configuration of every connection (its MTU
    lowered to the device's if it is larger); ``seed`` makes the stack deterministic
    (its ISN secret and its choice of ephemeral ports), for simulations.
    """

    def __init__(
        self,
        device: Device,
        address: str | None,
        *,
        prefix_length: int = 24,
        gateway: str | None = None,
        tcp: TcpConfig | None = None,
        seed: int | None = None,
        name: str | None = None,
        group: str | None = None,
    ) -> None:
        now = shardio.current_time()
        self._device = device
        self._address = 0 if address is None else parse_address(address)
        self.name = name or f"native stack {address or 'with no address'}"
        self._iface = Interface(
            InterfaceConfig(
                mac=device.mac,
                address=self._address,
                prefix_length=prefix_length,
                gateway=None if gateway is None else parse_address(gateway),
                mtu=device.mtu,
                # A device that vouches for its frames' checksums (a TAP
                # with checksum offload) hands up partial ones: not again.
                verify_checksums=not getattr(device, "checksums_verified", False),
            ),
            now,
        )
        tcp_config = tcp if tcp is not None else TcpConfig(mtu=device.mtu)
        if tcp_config.mtu > device.mtu:
            # A segment sized for a wider MTU could never leave (DF is set,
            # so the interface drops it): the device bounds the MSS.
            tcp_config = attrs.evolve(tcp_config, mtu=device.mtu)
        if getattr(device, "tso", False) and not tcp_config.segment_offload:
            # The device cuts large segments (TSO): new data leaves in
            # segments of up to an IPv4 datagram, less the largest headers.
            offload = getattr(device, "tso_max", 0) - _LARGEST_HEADERS
            if offload > tcp_config.mss:
                tcp_config = attrs.evolve(tcp_config, segment_offload=offload)
        self._segmented = tcp_config.segment_offload > 0
        self._tcp_config = tcp_config
        rng = random.Random(seed) if seed is not None else None
        secret = rng.randbytes(32) if rng is not None else os.urandom(32)
        self._isn = IsnGenerator(secret)
        low, high = EPHEMERAL_PORTS
        self._next_port = rng.randrange(low, high + 1) if rng else random.randrange(low, high + 1)
        self._connections: dict[tuple[int, int, int], NativeStream] = {}
        self._listeners: dict[int, NativeListener] = {}
        self._udp: dict[int, NativeUDPSocket] = {}
        self._dirty: dict[NativeStream, None] = {}
        self._dirty_listeners: dict[TcpListener, None] = {}
        self._timers: list[tuple[float, int, NativeStream]] = []
        self._timer_seq = itertools.count()
        self._waiter = DeviceWaiter(device)
        self._closed = False
        self._seed = seed
        self._dhcp: DhcpService | None = None
        self._passes = self._frames_in = self._frames_out = 0
        self._tcp_closed_port = self._udp_closed_port = self._internal_errors = 0
        # Frames another shard forwarded here (see _on_shards.py).
        self._injected: list[bytes] = []
        self._forwarded = self._injected_count = 0
        self._group: ShardGroup | None = None
        if group is not None and shardio.shard_count() > 1:
            self._group = ShardGroup(group, self)
            lowlevel.spawn_system_task(self._group.run_forwarder, name=f"<{self.name} forwarder>")
        self._task = lowlevel.spawn_system_task(self._pump, name=f"<{self.name}>")

    def __repr__(self) -> str:
        return f"<NativeStack {format_address(self._address)} on {self._device!r}>"

    @property
    def address(self) -> int:
        """The stack's IPv4 address, as an int; 0 while it has none."""
        return self._address

    @property
    def device(self) -> Device:
        """The device the stack sends and receives on (a capture wraps it)."""
        return self._device

    # -- the pump ----------------------------------------------------------------------

    async def _pump(self) -> None:
        clock = shardio.current_time
        try:
            while not self._closed:
                self._pass(clock())
                # Read each time: capture() and Capture.stop() replace the
                # waiter (with the device), and the old one hears nothing.
                await self._waiter.wait(self._next_deadline())
        finally:
            self._shut_down()

    def _pass(self, now: float) -> None:
        # Hot path: once per wake-up of the pump.
        self._passes += 1
        iface = self._iface
        frames = self._device.receive(now)
        if frames:
            self._frames_in += len(frames)
            self._handle_frames(frames, now, self._group)
        if self._injected:
            injected = self._injected
            self._injected = []
            self._injected_count += len(injected)
            self._handle_frames([memoryview(frame) for frame in injected], now, None)
        timers = self._timers
        if timers and timers[0][0] <= now:
            self._run_timers(now)
        if iface.next_deadline() <= now:
            iface.on_timer(now)
        self._flush(now)

    def _handle_frames(
        self, frames: list[memoryview], now: float, group: ShardGroup | None
    ) -> None:
        # Hot path: every frame. ``group`` is None for frames forwarded
        # here by another shard: they are never forwarded again.
        receive = self._iface.receive
        deliver = self._deliver
        for frame in frames:
            try:
                if group is not None and frame[12] == 8 and frame[13] == 6:
                    group.broadcast(frame)  # ARP: every shard's cache learns
                packet = receive(frame, now)
                if packet is not None:
                    deliver(packet, now, frame, group)
            except Exception:
                self._internal_errors += 1
                LOGGER.exception("%s: handling a frame raised; the frame is dropped", self.name)

    def _inject(self, frames: list[bytes]) -> None:
        """Frames another shard forwarded to this one: handled next pass."""
        self._injected.extend(frames)
        self._waiter.wake()

    def _deliver(
        self, packet: Any, now: float, frame: memoryview, group: ShardGroup | None
    ) -> None:
        kind = type(packet)
        if kind is TcpIngress:
            self._deliver_tcp(packet.src, packet.segment, now, frame, group)
        elif kind is UdpIngress:
            datagram: UdpDatagram = packet.datagram
            sock = self._udp.get(datagram.dst_port)
            if sock is None:
                if group is not None and group.index != 0:
                    self._forwarded += 1
                    group.forward(0, frame)  # single-instance services live on shard 0
                    return
                self._udp_closed_port += 1
                self._iface.send_icmp_unreachable(packet.ip, 3, now)
            else:
                sock._deliver(datagram.payload, (packet.src, datagram.src_port))
        elif kind is IcmpErrorIngress:
            pass  # counted by the interface; TCP recovers by retransmission (soft errors)

    def _deliver_tcp(
        self,
        src: int,
        segment: TcpSegment,
        now: float,
        frame: memoryview,
        group: ShardGroup | None,
    ) -> None:
        # Hot path: every segment.
        stream = self._connections.get((segment.dst_port, src, segment.src_port))
        if stream is not None:
            conn = stream._tcp
            if (
                segment.flags & SYN
                and conn.state is TcpState.TIME_WAIT
                and segment.dst_port in self._listeners
                and conn.time_wait_accepts(segment)
            ):
                # A new incarnation reopens the 4-tuple (RFC 6191).
                self._forget(stream)
            else:
                conn.on_segment(segment, now)
                self._dirty[stream] = None
                return
        if group is not None:
            owner = group.owner(segment.dst_port, src, segment.src_port)
            if owner != group.index:
                # Not ours: the kernel's hash chose this queue, not flow learning.
                self._forwarded += 1
                group.forward(owner, frame)
                return
        listener = self._listeners.get(segment.dst_port)
        if listener is not None:
            tcp_listener = listener._tcp
            remote = (src, segment.src_port)
            new = tcp_listener.on_segment(segment, remote, now)
            if new is not None:
                local = (self._address, segment.dst_port)
                stream = NativeStream(self, new, local, remote, listener)
                self._connections[stream.key] = stream
                self._dirty[stream] = None
            self._dirty_listeners[tcp_listener] = None
            return
        reply = reset_for(segment)
        self._tcp_closed_port += 1
        if reply is not None:
            self._send_tcp(reply, src, (), now)

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        dirty = self._dirty
        while timers and timers[0][0] <= now:
            deadline, _, stream = heapq.heappop(timers)
            if stream.timer != deadline or stream._forgotten:
                continue  # superseded by an earlier entry, or the connection is gone
            stream.timer = math.inf
            tcp = stream._tcp
            due = tcp.next_deadline()
            if due > now:
                # The deadline moved later since the entry was pushed (or
                # went away): re-arm it there, nothing runs now.
                if due != math.inf:
                    stream.timer = due
                    heapq.heappush(timers, (due, next(self._timer_seq), stream))
                continue
            tcp.on_timer(now)
            dirty[stream] = None

    def _flush(self, now: float) -> None:
        if self._dirty_listeners:
            for tcp_listener in self._dirty_listeners:
                for remote, segment in tcp_listener.segments_to_send():
                    self._send_tcp(segment, remote[0], (), now)
            self._dirty_listeners.clear()
        while self._dirty:
            dirty = self._dirty
            self._dirty = {}
            send = self._send_tcp
            for stream in dirty:
                tcp = stream._tcp
                peer = stream.remote[0]
                for segment, parts in tcp.segments_to_send(now):
                    send(segment, peer, parts, now)
                events = tcp.events()
                if events:
                    stream._on_events(events)
                if not stream._forgotten:
                    deadline = tcp.next_deadline()
                    if deadline < stream.timer:  # earlier than its entry: push (see Timers)
                        stream.timer = deadline
                        heapq.heappush(self._timers, (deadline, next(self._timer_seq), stream))
        frames = self._iface.frames()
        if frames:
            self._frames_out += len(frames)
            self._device.transmit(frames, now)

    def _next_deadline(self) -> float:
        deadline = self._iface.next_deadline()
        timers = self._timers
        if timers and timers[0][0] < deadline:
            deadline = timers[0][0]
        return deadline

    def _send_tcp(self, segment: TcpSegment, dst: int, parts: Sequence[Buffer], now: float) -> None:
        header = tcp_header(segment, self._address, dst, parts)
        self._iface.send_ip(dst, _TCP, (header, *parts), now, segmented=self._segmented)

    # -- what sockets ask of the stack ---------------------------------------------------

    def _touch(self, stream: NativeStream) -> None:
        """A user task changed ``stream``'s connection: flush it next pass."""
        self._dirty[stream] = None
        self._waiter.wake()

    def _forget(self, stream: NativeStream) -> None:
        """The connection is over (CLOSED): the 4-tuple is free again."""
        stream._forgotten = True
        if self._connections.get(stream.key) is stream:
            del self._connections[stream.key]

    def _accepted(self, conn: TcpConnection) -> NativeStream | None:
        """The stream of a connection a listener hands over; None if it is gone."""
        stream = self._connections.get((conn.local[1], conn.remote[0], conn.remote[1]))
        if stream is None or stream._tcp is not conn:
            return None
        stream._listener = None
        return stream

    def _close_listener(self, listener: NativeListener) -> None:
        now = shardio.current_time()
        if self._listeners.get(listener.port) is listener:
            del self._listeners[listener.port]
        for conn in listener._tcp.close(now):
            stream = self._connections.get((conn.local[1], conn.remote[0], conn.remote[1]))
            if stream is not None and stream._tcp is conn:
                self._dirty[stream] = None
        self._dirty_listeners[listener._tcp] = None
        self._waiter.wake()

    def _close_udp(self, sock: NativeUDPSocket) -> None:
        if self._udp.get(sock.port) is sock:
            del self._udp[sock.port]

    def _send_udp(self, port: int, address: tuple[int, int], payload: bytes) -> None:
        if len(payload) > 65507:
            raise OSError(f"a UDP datagram holds at most 65,507 bytes, not {len(payload)}")
        datagram = UdpDatagram(port, address[1])
        header = udp_header(datagram, self._address, address[0], (payload,))
        self._iface.send_ip(
            address[0], _UDP, (header, payload), shardio.current_time(), dont_fragment=False
        )
        self._waiter.wake()

    def _free_port(self, used: Callable[[int], bool]) -> int:
        low, high = EPHEMERAL_PORTS
        span = high - low + 1
        for _ in range(span):
            port = self._next_port
            self._next_port = low + (port - low + 1) % span
            if not used(port):
                return port
        raise OSError(98, "no free local port left in the ephemeral range")

    def _check_open(self) -> None:
        if self._closed:
            raise shardio.ClosedResourceError(f"{self.name} is closed")

    # -- the public API --------------------------------------------------------------------

    async def open_tcp_stream(self, host: str, port: int) -> NativeStream:
        """Connect to ``host`` (an IPv4 address: the native stack has no
        resolver) and ``port``; return the stream once the handshake is
        done. Refused: :class:`ConnectionRefusedError`; no answer within
        the SYN retries: :class:`TimeoutError`; no route (a loopback
        address, the stack's own, one off its subnet with no gateway):
        :class:`OSError` ``ENETUNREACH`` at once."""
        await lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if not self._address:
            raise OSError(
                errno.ENETUNREACH,
                f"{self.name} has no address yet: await stack.dhcp() or call "
                "stack.configure(address) first",
            )
        remote = (_address(host), _port(port))
        unreachable = self._iface.no_route(remote[0])
        if unreachable is not None:
            raise OSError(
                errno.ENETUNREACH,
                f"cannot connect to {host}:{port} from {self.name}: "
                f"{unreachable.removeprefix('route: ')}; the native stack has no loopback "
                "device and reaches only addresses on its subnet, and others through its "
                "gateway",
            )
        group = self._group
        local_port = self._free_port(
            lambda p: (
                (p, remote[0], remote[1]) in self._connections
                or p in self._listeners
                # A port whose flow this shard owns: the replies come back here.
                or (group is not None and group.owner(p, remote[0], remote[1]) != group.index)
            )
        )
        now = shardio.current_time()
        local = (self._address, local_port)
        conn = TcpConnection.connect(
            local,
            remote,
            self._tcp_config,
            now,
            self._isn.isn(local, remote, now),
            ts_offset=self._isn.timestamp_offset(local, remote),
        )
        stream = NativeStream(self, conn, local, remote)
        self._connections[stream.key] = stream
        self._touch(stream)
        await stream._wait_connected()
        return stream

    async def open_tcp_listeners(
        self, port: int, *, host: str | None = None, backlog: int | None = None
    ) -> list[NativeListener]:
        """Listen on ``port`` (0: an ephemeral one) of the stack's address;
        a list of one listener, as ``shardio_net.open_tcp_listeners`` returns.
        ``host``, if given, must be the stack's address (or 0.0.0.0).
        ``backlog`` bounds the accept queue (default 128)."""
        await lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if host is not None and host not in ("", "0.0.0.0") and _address(host) != self._address:
            raise OSError(
                99,
                f"cannot listen on {host}: the stack's address is {format_address(self._address)}",
            )
        port = _port(port)
        if port == 0:
            port = self._free_port(lambda p: p in self._listeners)
        elif port in self._listeners:
            raise OSError(98, f"port {port} is already listened on by this stack")
        tcp_listener = TcpListener(
            (self._address, port), self._tcp_config, self._isn, backlog=backlog or 128
        )
        listener = NativeListener(self, tcp_listener)
        self._listeners[port] = listener
        return [listener]

    async def serve_tcp(
        self,
        handler: Callable[[NativeStream], Awaitable[object]],
        port: int,
        *,
        host: str | None = None,
        backlog: int | None = None,
        handler_nursery: shardio.Nursery | None = None,
        task_status: TaskStatus[Sequence[Listener[NativeStream]]] = TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Serve ``handler(stream)`` for every connection to ``port``, as
        ``shardio_net.serve_tcp`` does on one shard (a task per connection,
        its stream closed when the handler returns, handler errors logged)."""
        listeners = await self.open_tcp_listeners(port, host=host, backlog=backlog)
        await serve_listeners(
            handler, listeners, handler_nursery=handler_nursery, task_status=task_status
        )

    async def open_udp_socket(
        self, host: str | None = None, port: int = 0, *, receive_queue: int = DEFAULT_RECEIVE_QUEUE
    ) -> NativeUDPSocket:
        """Bind ``port`` (0: an ephemeral one) for UDP; ``host``, if given,
        must be the stack's address. ``receive_queue`` datagrams are held
        for the reader before new ones are dropped."""
        await lowlevel.checkpoint()
        self._check_open()
        if host is not None and host not in ("", "0.0.0.0") and _address(host) != self._address:
            raise OSError(
                99, f"cannot bind {host}: the stack's address is {format_address(self._address)}"
            )
        port = _port(port)
        if port == 0:
            port = self._free_port(lambda p: p in self._udp)
        elif port in self._udp:
            raise OSError(98, f"UDP port {port} is already bound on this stack")
        sock = NativeUDPSocket(self, port, receive_queue)
        self._udp[port] = sock
        return sock

    def configure(
        self, address: str | None, *, prefix_length: int = 24, gateway: str | None = None
    ) -> None:
        """Give the stack its IPv4 ``address`` in a subnet of ``prefix_length``
        with ``gateway``, change them, or take the address away (``None``),
        as a DHCP lease does (:meth:`dhcp` calls it). A new address resets
        every connection (they belonged to the old one) and moves the
        listeners to it. ``ValueError`` for a combination no interface can
        have (see ``InterfaceConfig``)."""
        self._check_open()
        new = 0 if address is None else _address(address)
        config = attrs.evolve(
            self._iface.config,
            address=new,
            prefix_length=prefix_length,
            gateway=None if gateway is None else _address(gateway),
        )
        if new != self._address:
            now = shardio.current_time()
            for stream in list(self._connections.values()):
                stream._tcp.abort(now)
                self._dirty[stream] = None
            self._flush(now)  # the RSTs leave from the old address
            for port, listener in self._listeners.items():
                listener._tcp.local = (new, port)
        self._iface.reconfigure(config)
        self._address = new
        self._waiter.wake()

    @property
    def lease(self) -> Lease | None:
        """The DHCP lease the stack holds now (see :meth:`dhcp`), if any."""
        return None if self._dhcp is None else self._dhcp.lease

    async def dhcp(
        self, config: DhcpConfig | None = None, *, on_change: OnChange | None = None
    ) -> Lease:
        """Get an address by DHCP (RFC 2131) and keep it: return the first
        lease once the stack has its address, prefix and gateway; a client
        keeps renewing it for as long as the stack runs, and applies what
        changes (:meth:`configure`), taking the address away if the lease is
        lost and asking for a new one. ``await on_change(lease)`` is called
        at each change (``None``: lost). ``config`` sets the client
        (``shardio_net.native.dhcp.DhcpConfig``: client id, host name, an
        address to ask for first, retransmissions).

        The stack must have no address yet (made with ``address=None``),
        and runs one client: on several shards sharing a device and MAC, run
        it on one and :meth:`configure` the others from ``on_change``.
        Cancelled before a lease came, the client stops. Without an answer
        it keeps trying: bound the wait with ``shardio.fail_after``."""
        await lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self._dhcp is not None and self._dhcp.running:
            raise RuntimeError(f"{self.name} already runs a DHCP client")
        if self._address:
            raise RuntimeError(
                f"{self.name} has an address ({format_address(self._address)}); a DHCP client "
                "runs on a stack made with address=None"
            )
        seed = None if self._seed is None else self._seed * 4 + 3
        self._dhcp = service = await DhcpService.start(self, config, seed, on_change)
        return await service.wait_bound()

    def capture(self, path: str | os.PathLike[str]) -> Capture:
        """Record every frame the stack sends and receives from now on in the
        pcap file ``path`` (readable by tcpdump and Wireshark), until the
        returned :class:`Capture` is stopped (or the stack closes). Under a
        MockClock with a seed, the same run gives the same file byte for byte."""
        self._check_open()
        writer = PcapWriter(self._device, path)
        self._use_device(writer)
        return Capture(self, writer)

    def _use_device(self, device: Device) -> None:
        self._waiter.close()
        self._device = device
        self._waiter = DeviceWaiter(device)
        self._waiter.wake()

    def statistics(self) -> StackStatistics:
        """Connections by state, the pump's and the interface's figures."""
        states: dict[str, int] = {}
        for stream in self._connections.values():
            name = stream._tcp.state.name
            states[name] = states.get(name, 0) + 1
        device_statistics = getattr(self._device, "statistics", None)
        return StackStatistics(
            address=format_address(self._address),
            connections=states,
            listeners=len(self._listeners),
            udp_sockets=len(self._udp),
            tcp_closed_port=self._tcp_closed_port,
            udp_closed_port=self._udp_closed_port,
            passes=self._passes,
            frames_received=self._frames_in,
            frames_transmitted=self._frames_out,
            internal_errors=self._internal_errors,
            forwarded=self._forwarded,
            injected=self._injected_count,
            interface=self._iface.statistics(),
            device=None if device_statistics is None else device_statistics(),
        )

    def close(self) -> None:
        """Stop the stack: every connection is reset, every socket closed,
        the pump ends. Done by itself when the run ends."""
        if not self._closed:
            self._closed = True
            self._waiter.wake()

    def _shut_down(self) -> None:
        # The run is ending (or close() was called): reset every connection,
        # tell the peers (one last flush sends the RSTs), wake every waiter.
        self._closed = True
        now = shardio.current_time()
        for stream in list(self._connections.values()):
            stream._tcp.abort(now)
            self._dirty[stream] = None
        for listener in list(self._listeners.values()):
            listener._tcp.close(now)
            self._dirty_listeners[listener._tcp] = None
        try:
            self._flush(now)
        except Exception:
            LOGGER.exception("%s: the last flush raised", self.name)
        for listener in list(self._listeners.values()):
            listener._closed = True
            listener._acceptors.unpark_all()
        for sock in list(self._udp.values()):
            sock.close()
        self._connections.clear()
        self._listeners.clear()
        self._waiter.close()
        self._device.close()


@final
class Capture:
    """A pcap capture of a stack's frames (see :meth:`NativeStack.capture`).

    :meth:`flush` makes the file complete so far (for a reader while it
    runs); :meth:`stop` ends the capture and the stack runs on without it.
    Also a context manager that stops on exit.
    """

    __slots__ = ("_stack", "_writer")

    def __init__(self, stack: NativeStack, writer: PcapWriter) -> None:
        self._stack = stack
        self._writer = writer

    @property
    def path(self) -> str:
        """The pcap file written."""
        return self._writer.path

    def flush(self) -> None:
        """Write out what is buffered: the file holds every frame so far."""
        self._writer.flush()

    def stop(self) -> None:
        """End the capture (the file is flushed and closed); idempotent."""
        stack = self._stack
        if stack._device is self._writer:
            stack._use_device(self._writer.detach())
        else:
            self._writer.detach()

    def statistics(self) -> Any:
        """Frames and bytes recorded, and why the capture stopped if it did."""
        return self._writer.statistics()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _address(host: str) -> int:
    try:
        return parse_address(host)
    except (TypeError, ValueError):
        raise ValueError(
            f"the native stack takes IPv4 addresses in dotted form, like '10.0.0.2', not {host!r} "
            "(it has no resolver)"
        ) from None


def _port(port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"a port is an int from 0 to 65535, not {port!r}")
    return port
