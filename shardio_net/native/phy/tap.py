"""TapDevice: one queue of a Linux multi-queue TAP device, as a ``Device``.

A TAP device is an Ethernet interface whose wire is a file descriptor: what
the kernel sends on the interface is read from the fd, one frame per
``read()``, and each ``write()`` is a frame the kernel receives on it. With
``IFF_MULTI_QUEUE`` one interface has up to 256 such fds, its *queues*: the
kernel spreads the flows it sends over them (by flow hash, and by learning
which queue last wrote a flow's packets), and takes frames from any. Seastar
gives each shard a queue of one device; so does shardio: each shard opens
its own ``TapDevice(name)``, and every shard's stack answers for the same
address with the same MAC (by default one derived from the name).

Making and attaching
--------------------
``TUNSETIFF`` on a new fd of /dev/net/tun names the device and its flags:
``IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR`` (Ethernet frames,
no packet-information prefix, a queue of a multi-queue device, each frame
behind a virtio-net header). If the interface exists -- a persistent one
made by ``ip tuntap add dev tap0 mode tap multi_queue``, or one another shard
made a moment ago -- the fd becomes one more queue of it; that needs the
device's owner, or CAP_NET_ADMIN. If it does not, the kernel makes it
(CAP_NET_ADMIN needed), not persistent: it goes when its last queue fd is
closed, so a run that made it leaves nothing behind. The flags must match
the device's: a TAP made without ``multi_queue``, a TUN, or an interface of
another kind are refused (EINVAL), and the error then says which it is --
asked of the kernel with one rtnetlink request, since sysfs may show
another network namespace than this thread's -- and what to do. The
offload settings (below) belong to the device, not the queue: the last
queue to set them wins, so every shard opens the device with the same ones.
A new device is down; whoever gives the kernel its side (an address, ``ip
link set up``) brings it up, and until then writes fail (EIO, counted).

The virtio-net header
---------------------
With ``IFF_VNET_HDR`` every frame read or written is preceded by a
``struct virtio_net_hdr`` (``TUNSETVNETHDRSZ``: 10 bytes here), the header a
virtio NIC and its driver exchange, in the host's byte order::

    u8  flags        NEEDS_CSUM (1): the transport checksum is left partial;
                     DATA_VALID (2): it was verified
    u8  gso_type     NONE (0), TCPV4 (1), ...: a segment to be cut
    u16 hdr_len      bytes of headers (Ethernet to TCP) before the payload
    u16 gso_size     the payload of each segment once cut (the MSS)
    u16 csum_start   with NEEDS_CSUM: where the checksummed bytes start,
    u16 csum_offset  and where, from there, the checksum goes

It is how offloads cross the fd. ``TUNSETOFFLOAD`` says what the device
(we) can take from the kernel: ``TUN_F_CSUM`` lets the kernel send TCP and
UDP with the checksum left partial -- the field holds only the
pseudo-header's sum, NEEDS_CSUM set -- as it would to a NIC that fills it
in; ``TUN_F_TSO4`` (which needs ``TUN_F_CSUM``) lets it send TCP segments of
up to 64 KiB uncut, gso_type TCPV4, as to a NIC that segments. In the other
direction the header is ours to fill, whatever ``TUNSETOFFLOAD`` says.

The offloads, and what the stack does with them
-----------------------------------------------
*Checksums in* (``checksum_offload``, ``TUN_F_CSUM``). A frame from the
kernel comes with NEEDS_CSUM (its own TCP and UDP: the checksum is partial,
and the data never left the machine's memory, so there is nothing to
verify), DATA_VALID (a forwarded frame whose checksum a NIC or the kernel
verified), or neither. The device vouches for all of them: a frame with
neither flag -- ARP, ICMP, RSTs, fragments, whatever the kernel forwards
unverified -- has its IPv4 header and transport checksums verified here
(``wire.checksum``, in C), and is dropped and counted if one is wrong. So
:attr:`TapDevice.checksums_verified` is a promise about every frame
``receive`` returns, and a stack on such a device must not verify them again
(``InterfaceConfig(verify_checksums=False)``): a partial checksum would fail.
In a bulk transfer every data frame is NEEDS_CSUM and the verifications
here are a handful. This is Seastar's ``hw_features.rx_csum_offload`` with
the one difference that unflagged frames are still checked.

*Large segments in* (``lro``, ``TUN_F_TSO4``). The kernel's TCP hands the
TAP segments of up to 64 KiB, uncut, as to a NIC with TSO: the stack
handles one segment where it would handle forty, which is where a Python
stack's time goes. Such a frame is longer than ``mtu + 14``: the device
takes it (``large_frames_received``), and the stack must too.

*Large segments out* (``tso``). A TCP segment the stack sends that is longer
than ``mtu + 14`` (up to :attr:`TapDevice.tso_max`, an IPv4 datagram of
65535 bytes) goes with gso_type TCPV4, and the kernel cuts it into segments
of ``mtu - IP header - TCP header`` bytes, each with the headers and
options of the original (or keeps it whole when the segment is for the
machine itself, as GRO would have made it). The segment keeps the full
checksum the stack computed (flags 0): the kernel recomputes each piece's.
``gso_size`` is derived from the MTU, so a connection may send TSO segments
only while its MSS is that full size (the peer's MSS is not smaller): the
usual case on Ethernet. Without ``tso`` such a frame is dropped and
counted, as a NIC drops a giant. *Checksums out*: the stack's checksums
are complete, and the device sends them as they are; sending them partial
(NEEDS_CSUM, csum_start and csum_offset) would spare the stack a sum over
the payload, and needs the TCP emitter to write the pseudo-header's sum
instead -- not done.

Batches
-------
``receive(now)`` reads until the fd has nothing (EAGAIN) or
``receive_budget`` frames were read (64: NAPI's weight), and each read is
one ``os.read`` of a buffer big enough for the largest frame: a ``bytes``
of the frame's own (Python shrinks it to the frame's size in place), which
is what ``device.py``'s ownership rule asks, and the frame is a view of it
past the header. When the budget stops it, ``next_deadline()`` is ``-inf``
(due now): the stack comes back after one scheduler pass, having let the
other tasks run. ``transmit(frames, now)`` is one ``os.writev`` per frame
-- the header and the frame's parts, never joined -- since a TAP fd takes
one frame per write. The kernel copies the parts before ``writev`` returns,
so nothing is held after ``transmit``. A C loop of ``writev`` calls over the
whole batch, in one cffi call, was measured against it and lost (110,000
against 210,000 to 440,000 frames a second, ``tests/native/tap_bench.py``):
building its iovecs with ``ffi.from_buffer`` costs more than ``writev``'s
own handling of its arguments.

Waking
------
``set_waker(fn)`` registers the fd with the shard's scheduler as the wakeup
fd of a :class:`shardio.lowlevel.Poller` that has nothing else to do: the
scheduler's epoll watches it (level-triggered) and, when it is readable,
calls back here, which marks frames as waiting (``next_deadline()`` becomes
``-inf``) and calls ``fn`` -- the stack's ``DeviceWaiter``, which reschedules
the stack. No task of its own, and no system call per wake-up: a task
looping on ``lowlevel.wait_readable(fd)`` would cost a task switch and an
``epoll_ctl`` to re-arm its one-shot registration each time, and would
have to wait for the stack to empty the queue before waiting again (it
made 17 % fewer UDP round trips with the kernel, measured).
While frames wait unread the fd stays readable, and each poll of the
scheduler calls back again: cheap, and the stack is runnable then anyway.
``set_waker(None)`` and ``close()`` unregister it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Sequence
from math import inf
from typing import TYPE_CHECKING, final

import attrs

from shardio import ClosedResourceError, lowlevel

from ..wire.checksum import pseudo_header_sum, verify
from .device import ETHERNET_HEADER_LENGTH, Waker, check_mac, check_mtu

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["TUN_PATH", "TapDevice", "TapStatistics"]

LOGGER = logging.getLogger("shardio_net.native")

#: The clone device every TUN/TAP queue is opened through.
TUN_PATH = "/dev/net/tun"

# <linux/if_tun.h>
_TUNSETIFF = 0x400454CA
_TUNSETOFFLOAD = 0x400454D0
_TUNSETVNETHDRSZ = 0x400454D8
_IFF_TUN = 0x0001
_IFF_TAP = 0x0002
_IFF_MULTI_QUEUE = 0x0100
_IFF_NO_PI = 0x1000
_IFF_VNET_HDR = 0x4000
_TUN_F_CSUM = 0x01
_TUN_F_TSO4 = 0x02
_SIOCGIFMTU = 0x8921
# <linux/rtnetlink.h>, <linux/if_link.h>
_RTM_NEWLINK = 16
_RTM_GETLINK = 18
_IFLA_IFNAME = 3
_IFLA_LINKINFO = 18
_IFLA_INFO_KIND = 1
_IFLA_INFO_DATA = 2
_IFLA_TUN_TYPE = 3
_IFLA_TUN_MULTI_QUEUE = 7

# <linux/virtio_net.h>: struct virtio_net_hdr, in the host's byte order
# (little-endian here: TUN's default on a little-endian machine).
_VNET = struct.Struct("<BBHHHH")
VNET_HEADER_LENGTH = _VNET.size  # 10
_F_NEEDS_CSUM = 1
_F_DATA_VALID = 2
_GSO_TCPV4 = 1

#: The largest IPv4 datagram: what a TSO or LRO frame may carry after its
#: Ethernet header.
_MAX_DATAGRAM = 65535
#: What one read asks for: a header and the largest frame the kernel hands a
#: TAP (a 64 KiB GSO frame), so nothing is ever cut (TUN drops what does not
#: fit the reader's buffer).
_READ_SIZE = VNET_HEADER_LENGTH + ETHERNET_HEADER_LENGTH + _MAX_DATAGRAM

#: Linux's limit on interface names (IFNAMSIZ - 1).
_MAX_NAME = 15


@attrs.frozen
class TapStatistics:
    """What a :class:`TapDevice` queue has carried and dropped."""

    #: The interface and whether this queue made it (else it attached).
    name: str
    created: bool
    #: Frames returned by :meth:`TapDevice.receive`, and their bytes.
    frames_received: int
    bytes_received: int
    #: Frames written to the kernel, and their bytes.
    frames_sent: int
    bytes_sent: int
    #: Received frames larger than ``mtu + 14``: TCP segments the kernel did
    #: not cut (its TSO, or GRO on a forwarded flow), with ``lro`` on.
    large_frames_received: int
    #: Sent frames larger than ``mtu + 14``: TCP segments for the kernel to
    #: cut (``tso`` on).
    large_frames_sent: int
    #: Received frames by what the kernel said of their checksums (with
    #: ``checksum_offload`` on): left partial (NEEDS_CSUM), already verified
    #: (DATA_VALID), or nothing -- those the device verified itself.
    partial_checksums: int
    valid_checksums: int
    verified_here: int
    #: Received frames dropped for a checksum the device found wrong.
    dropped_bad_checksum: int
    #: Frames to send dropped: longer than the device carries.
    dropped_oversize: int
    #: Frames the kernel refused (the link is down, the device gone...);
    #: ``last_error`` says why, for the latest.
    dropped_send_error: int
    last_error: str | None
    #: Passes whose ``receive`` stopped at its budget with frames left.
    receive_budget_exhausted: int


def _default_mac(name: str) -> bytes:
    # Locally administered, unicast, and the same for every queue of the
    # device: every shard's stack answers ARP for one address with one MAC.
    digest = hashlib.sha256(b"shardio tap " + name.encode()).digest()
    return bytes([0x02 | (digest[0] & 0xFC)]) + digest[1:6]


def _link(name: str) -> tuple[str, int, bool] | None:
    """What the kernel says of interface ``name`` in this thread's network
    namespace (sysfs may show another): its kind ("tun" for TUN and TAP),
    for a TUN/TAP its type (``_IFF_TUN`` or ``_IFF_TAP``) and whether it is
    multi-queue. None if there is no such interface. One rtnetlink
    RTM_GETLINK request."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        ifname = name.encode() + b"\0"
        attribute = struct.pack("HH", 4 + len(ifname), _IFLA_IFNAME) + ifname
        attribute += bytes(-len(attribute) % 4)
        body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + attribute
        sock.send(struct.pack("IHHII", 16 + len(body), _RTM_GETLINK, 1, 1, 0) + body)
        reply = sock.recv(65536)
    if len(reply) < 20:
        return None
    kind_of_message = struct.unpack_from("H", reply, 4)[0]
    if kind_of_message != _RTM_NEWLINK:
        return None  # NLMSG_ERROR: no such device
    attributes = _attributes(reply, 32, struct.unpack_from("I", reply)[0])
    info = _attributes(attributes.get(_IFLA_LINKINFO, b""), 0)
    kind = info.get(_IFLA_INFO_KIND, b"").rstrip(b"\0").decode()
    data = _attributes(info.get(_IFLA_INFO_DATA, b""), 0)
    tun_type = data.get(_IFLA_TUN_TYPE, b"\0")[0]
    multi_queue = data.get(_IFLA_TUN_MULTI_QUEUE, b"\0")[0] != 0
    return kind, tun_type, multi_queue


def _attributes(buffer: bytes, offset: int, end: int | None = None) -> dict[int, bytes]:
    """The rtnetlink attributes in ``buffer[offset:end]``, by type."""
    found: dict[int, bytes] = {}
    end = len(buffer) if end is None else min(end, len(buffer))
    while offset + 4 <= end:
        length, kind = struct.unpack_from("HH", buffer, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = buffer[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _mtu(name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer = fcntl.ioctl(sock, _SIOCGIFMTU, struct.pack("16si", name.encode(), 0))
    return int(struct.unpack_from("i", answer, 16)[0])


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a TAP device's name is a str such as 'tap0', not {name!r}")
    if not name or len(name.encode()) > _MAX_NAME or "/" in name or name.strip() != name:
        raise ValueError(
            f"{name!r} is not an interface name: 1 to {_MAX_NAME} bytes, no '/' or spaces"
        )
    return name


def _explain(error: OSError, name: str, existed: bool) -> OSError:
    """``error`` from TUNSETIFF, with what was wrong and what to do."""
    code = error.errno or errno.EIO
    if code in (errno.EPERM, errno.EACCES):
        if existed:
            message = (
                f"not allowed to attach to TAP device {name!r}: it belongs to another user "
                "or group and this process lacks CAP_NET_ADMIN (run as its owner, or make it "
                f"with 'ip tuntap add dev {name} mode tap multi_queue user USER')"
            )
        else:
            message = (
                f"creating TAP device {name!r} needs CAP_NET_ADMIN; have root make it for "
                f"this user beforehand: 'ip tuntap add dev {name} mode tap multi_queue "
                "user USER' (then the device stays, and this process attaches to it)"
            )
        return PermissionError(code, message)
    if code == errno.EINVAL and existed:
        link = _link(name)
        if link is None:
            message = f"the kernel refused to make TAP device {name!r}"
        elif link[0] != "tun":
            message = (
                f"{name!r} exists and is a {link[0] or 'network'} device, not a TAP; "
                "choose another name"
            )
        elif link[1] == _IFF_TUN:
            message = (
                f"{name!r} is a TUN device (IP packets), not a TAP (Ethernet frames): "
                f"recreate it with 'ip tuntap del dev {name} mode tun && "
                f"ip tuntap add dev {name} mode tap multi_queue'"
            )
        elif not link[2]:
            message = (
                f"TAP device {name!r} was made without multi_queue, and each shard needs "
                f"a queue of its own: recreate it with 'ip tuntap del dev {name} mode tap "
                f"&& ip tuntap add dev {name} mode tap multi_queue'"
            )
        else:
            message = f"the kernel refused to attach a queue to TAP device {name!r}"
        return OSError(code, f"{message} ({os.strerror(code)})")
    if code == errno.E2BIG:
        return OSError(code, f"TAP device {name!r} already has the most queues Linux allows (256)")
    if code == errno.EBUSY:
        return OSError(code, f"TAP device {name!r} is in use by a single-queue owner")
    return OSError(code, f"could not open a queue of TAP device {name!r}: {os.strerror(code)}")


def _open_queue(name: str, offload: int) -> tuple[int, bool]:
    """A non-blocking fd on a new queue of TAP ``name`` (made if absent),
    with the virtio-net header and ``offload``; and whether it was made."""
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"no {TUN_PATH}: this kernel has no TUN/TAP driver loaded ('modprobe tun'), or a "
            "container hides it (give it the device: docker run --device /dev/net/tun "
            "--cap-add NET_ADMIN)",
        ) from None
    except PermissionError as error:
        raise PermissionError(
            error.errno,
            f"not allowed to open {TUN_PATH} (mode {os.stat(TUN_PATH).st_mode & 0o777:o}): "
            "run as root, or make it readable and writable by this user",
        ) from None
    try:
        existed = _link(name) is not None
        request = struct.pack(
            "16sH", name.encode(), _IFF_TAP | _IFF_NO_PI | _IFF_MULTI_QUEUE | _IFF_VNET_HDR
        )
        try:
            fcntl.ioctl(fd, _TUNSETIFF, request)
        except OSError as error:
            raise _explain(error, name, existed) from None
        fcntl.ioctl(fd, _TUNSETVNETHDRSZ, struct.pack("i", VNET_HEADER_LENGTH))
        fcntl.ioctl(fd, _TUNSETOFFLOAD, offload)
    except BaseException:
        os.close(fd)
        raise
    return fd, not existed


@final
class TapDevice:
    """One queue of the multi-queue TAP device ``name``: a
    :class:`~.device.Device` whose other end is the Linux kernel.

    Attaches a queue to the device if it exists (made with ``ip tuntap add
    dev NAME mode tap multi_queue``), or makes it (CAP_NET_ADMIN needed; it
    then disappears when its last queue closes). ``mac`` defaults to one
    derived from the name, the same in every process; ``mtu`` to the
    interface's. The offloads (see the module docs): ``checksum_offload``
    lets the kernel leave checksums to us -- the device vouches for every
    frame it returns (:attr:`checksums_verified`); ``lro`` lets it send TCP
    segments of up to 64 KiB uncut (needs ``checksum_offload``); ``tso``
    lets us send such segments for it to cut. ``receive_budget`` bounds the
    frames one :meth:`receive` reads.

    Errors say what was wrong and what to do: ``FileNotFoundError`` without
    /dev/net/tun, ``PermissionError`` without the right to open it, make
    the device or attach to it, ``OSError`` (EINVAL) when ``name`` is not a
    multi-queue TAP.
    """

    __slots__ = (
        "_bytes_received",
        "_bytes_sent",
        "_dropped_bad_checksum",
        "_dropped_oversize",
        "_dropped_send_error",
        "_fd",
        "_frames_received",
        "_frames_sent",
        "_large_received",
        "_large_sent",
        "_last_error",
        "_max_frame",
        "_partial",
        "_plain_header",
        "_poller",
        "_readable",
        "_registered",
        "_valid",
        "_verified_here",
        "_waker",
        "budget_exhausted",
        "checksums_verified",
        "created",
        "lro",
        "mac",
        "mtu",
        "name",
        "receive_budget",
        "tso",
        "tso_max",
    )

    def __init__(
        self,
        name: str = "tap0",
        *,
        mac: bytes | None = None,
        mtu: int | None = None,
        checksum_offload: bool = True,
        tso: bool = True,
        lro: bool = True,
        receive_budget: int = 64,
    ) -> None:
        name = _check_name(name)
        if lro and not checksum_offload:
            raise ValueError(
                "lro=True needs checksum_offload=True: the kernel hands over large segments "
                "only with their checksums left partial"
            )
        if not isinstance(receive_budget, int) or receive_budget < 1:
            raise ValueError(f"receive_budget is a number of frames >= 1, not {receive_budget!r}")
        offload = (_TUN_F_CSUM if checksum_offload else 0) | (_TUN_F_TSO4 if lro else 0)
        fd, created = _open_queue(name, offload)
        try:
            if mtu is None:
                mtu = _mtu(name)
            #: The interface's name.
            self.name = name
            #: This device's Ethernet address (the kernel side has its own).
            self.mac = check_mac(mac) if mac is not None else _default_mac(name)
            #: The IP MTU: frames are at most ``mtu + 14`` bytes, except
            #: TSO and LRO segments.
            self.mtu = check_mtu(mtu)
        except BaseException:
            os.close(fd)
            raise
        #: Whether this queue made the device (it goes when its last queue does).
        self.created = created
        #: True if every frame :meth:`receive` returns has had its IPv4, TCP,
        #: UDP and ICMP checksums verified -- by the kernel, or here -- so the
        #: stack must not verify them again (a partial checksum would fail).
        self.checksums_verified = checksum_offload
        #: Whether received TCP segments may exceed ``mtu + 14`` bytes.
        self.lro = lro
        #: Whether TCP segments to send may exceed the MTU, up to ``tso_max``.
        self.tso = tso
        #: The largest IPv4 datagram the stack may send in one frame: 65535
        #: with ``tso`` (TCP only: the kernel cuts it), else ``mtu``.
        self.tso_max = _MAX_DATAGRAM if tso else self.mtu
        self.receive_budget = receive_budget
        self._fd = fd
        self._max_frame = self.mtu + ETHERNET_HEADER_LENGTH
        self._plain_header = bytes(VNET_HEADER_LENGTH)
        self._waker: Waker | None = None
        self._poller = lowlevel.Poller()
        self._registered = False
        self._readable = False
        self._frames_received = self._bytes_received = 0
        self._frames_sent = self._bytes_sent = 0
        self._large_received = self._large_sent = 0
        self._partial = self._valid = self._verified_here = 0
        self._dropped_bad_checksum = self._dropped_oversize = self._dropped_send_error = 0
        self._last_error: str | None = None
        self.budget_exhausted = 0

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd {self._fd}"
        return f"<TapDevice {self.name} {self.mac.hex(':')}, {state}>"

    def fileno(self) -> int:
        """The queue's file descriptor (-1 once closed)."""
        return self._fd

    # -- receiving -----------------------------------------------------------------

    def receive(self, now: float) -> list[memoryview]:
        """Every frame the kernel has queued, up to ``receive_budget``: each
        a read-only view, past the virtio-net header, of its own ``bytes``."""
        # Hot path: once per stack pass, the loop once per frame.
        fd = self._fd
        if fd < 0:
            raise ClosedResourceError("this TAP device was closed")
        frames: list[memoryview] = []
        read = os.read
        max_frame = self._max_frame
        size = 0
        for _ in range(self.receive_budget):
            try:
                data = read(fd, _READ_SIZE)
            except BlockingIOError:
                self._readable = False
                break
            except OSError as error:
                # The device was deleted under us (EBADFD), or the kernel
                # dropped a frame it could not give: no frame this time.
                self._receive_error(error)
                self._readable = False
                break
            length = len(data) - VNET_HEADER_LENGTH
            flags = data[0]
            if flags:
                if flags & _F_NEEDS_CSUM:
                    self._partial += 1
                else:
                    self._valid += 1
            elif self.checksums_verified and not self._verify(data):
                self._dropped_bad_checksum += 1
                continue
            if length > max_frame:
                self._large_received += 1
            size += length
            frames.append(memoryview(data)[VNET_HEADER_LENGTH:])
        else:
            self._readable = True
            self.budget_exhausted += 1
        self._frames_received += len(frames)
        self._bytes_received += size
        return frames

    def _verify(self, data: bytes) -> bool:
        """The checksums of a frame the kernel vouched nothing for (with
        checksum offload on, so the stack will not look): False if one is
        wrong. What cannot be checked is left to the stack's parsers."""
        self._verified_here += 1
        ip = VNET_HEADER_LENGTH + ETHERNET_HEADER_LENGTH
        if len(data) < ip + 20 or data[ip - 2 : ip] != b"\x08\x00":
            return True  # not IPv4 (ARP has no checksum), or too short to be
        header_length = (data[ip] & 0x0F) * 4
        total = int.from_bytes(data[ip + 2 : ip + 4], "big")
        view = memoryview(data)
        if header_length < 20 or total < header_length or len(data) < ip + total:
            return True  # malformed: the parser says so, with its reason
        if not verify(view[ip : ip + header_length]):
            return False
        if data[ip + 6] & 0x3F or data[ip + 7]:
            return True  # a fragment: its transport checksum covers the whole datagram
        protocol = data[ip + 9]
        transport = view[ip + header_length : ip + total]
        if protocol == 1:
            return verify(transport)
        if protocol == 17 and len(transport) >= 8 and transport[6] == transport[7] == 0:
            return True  # UDP without a checksum
        if protocol in (6, 17):
            src = int.from_bytes(data[ip + 12 : ip + 16], "big")
            dst = int.from_bytes(data[ip + 16 : ip + 20], "big")
            return verify(transport, pseudo_header_sum(src, dst, protocol, len(transport)))
        return True

    def _receive_error(self, error: OSError) -> None:
        self._last_error = f"read: {error.strerror or error}"
        LOGGER.warning("%s: reading a frame failed: %s", self.name, error)

    # -- sending -------------------------------------------------------------------

    def transmit(self, frames: Sequence[Sequence[Buffer]], now: float) -> None:
        """Write each frame, with its virtio-net header, in one ``writev``.
        A TCP segment longer than ``mtu + 14`` goes as a TSO frame (``tso``
        on) or is dropped and counted; a frame the kernel refuses is counted
        (``last_error`` says why) -- never raised."""
        # Hot path: once per stack pass, the loop once per frame.
        fd = self._fd
        if fd < 0:
            raise ClosedResourceError("this TAP device was closed")
        writev = os.writev
        max_frame = self._max_frame
        plain = self._plain_header
        sent = sent_bytes = 0
        for parts in frames:
            size = 0
            for part in parts:
                size += len(part)  # type: ignore[arg-type]
            header = plain
            if size > max_frame:
                tso_header = self._tso_header(parts, size)
                if tso_header is None:
                    self._dropped_oversize += 1
                    continue
                header = tso_header
            try:
                writev(fd, (header, *parts))
            except OSError as error:
                self._send_error(error)
                continue
            sent += 1
            sent_bytes += size
        self._frames_sent += sent
        self._bytes_sent += sent_bytes

    def _tso_header(self, parts: Sequence[Buffer], size: int) -> bytes | None:
        """The virtio-net header that has the kernel cut ``parts`` (an IPv4
        TCP segment over the MTU) into segments of the MTU; None if the
        frame is not one, or TSO is off."""
        if not self.tso or size > ETHERNET_HEADER_LENGTH + _MAX_DATAGRAM:
            return None
        # The headers: Ethernet, IPv4 and TCP, at most 14 + 60 + 60 bytes,
        # usually in the first two parts (never the payload's bytes).
        head = b""
        for part in parts:
            head += bytes(part[: 134 - len(head)])  # type: ignore[index]
            if len(head) >= 134:
                break
        ip = ETHERNET_HEADER_LENGTH
        if len(head) < ip + 20 or head[ip - 2 : ip] != b"\x08\x00" or head[ip + 9] != 6:
            return None
        header_length = (head[ip] & 0x0F) * 4
        tcp = ip + header_length
        if len(head) < tcp + 20:
            return None
        tcp_length = (head[tcp + 12] >> 4) * 4
        self._large_sent += 1
        return _VNET.pack(
            0,
            _GSO_TCPV4,
            tcp + tcp_length,
            self.mtu - header_length - tcp_length,
            0,
            0,
        )

    def _send_error(self, error: OSError) -> None:
        self._dropped_send_error += 1
        reason = error.strerror or str(error)
        if error.errno == errno.EIO:
            reason = f"{reason}: the interface is down ('ip link set {self.name} up')"
        if self._last_error != f"write: {reason}":
            LOGGER.warning("%s: the kernel refused a frame: %s", self.name, reason)
        self._last_error = f"write: {reason}"

    # -- waking --------------------------------------------------------------------

    def next_deadline(self) -> float:
        """``-inf`` when frames are known to wait (the fd was reported
        readable, or the last :meth:`receive` stopped at its budget);
        ``inf`` otherwise: a TAP has nothing timed."""
        return -inf if self._readable else inf

    def set_waker(self, waker: Waker | None) -> None:
        """Call ``waker()`` when the queue becomes readable. Registers the fd
        with the current shard's scheduler, so call it inside the run, on
        the shard that uses the device; ``None`` unregisters."""
        if self._fd < 0:
            raise ClosedResourceError("this TAP device was closed")
        self._waker = waker
        if waker is not None and not self._registered:
            lowlevel.add_poller(self._poller, wakeup_fd=self._fd, drain=self._on_readable)
            self._registered = True
        elif waker is None and self._registered:
            self._unregister()

    def _on_readable(self) -> None:
        # The scheduler's epoll found the fd readable (level-triggered: it
        # says so on every poll until receive() empties the queue).
        self._readable = True
        waker = self._waker
        if waker is not None:
            waker()

    def _unregister(self) -> None:
        self._registered = False
        try:
            lowlevel.remove_poller(self._poller, wakeup_fd=self._fd)
        except RuntimeError:
            pass  # the run is over, and its epoll with it

    def close(self) -> None:
        """Close this queue (the device goes with its last queue, unless it
        is persistent). Idempotent."""
        fd = self._fd
        if fd < 0:
            return
        if self._registered:
            self._unregister()
        self._waker = None
        self._fd = -1
        os.close(fd)

    def statistics(self) -> TapStatistics:
        """Counters of what this queue carried and dropped."""
        return TapStatistics(
            name=self.name,
            created=self.created,
            frames_received=self._frames_received,
            bytes_received=self._bytes_received,
            frames_sent=self._frames_sent,
            bytes_sent=self._bytes_sent,
            large_frames_received=self._large_received,
            large_frames_sent=self._large_sent,
            partial_checksums=self._partial,
            valid_checksums=self._valid,
            verified_here=self._verified_here,
            dropped_bad_checksum=self._dropped_bad_checksum,
            dropped_oversize=self._dropped_oversize,
            dropped_send_error=self._dropped_send_error,
            last_error=self._last_error,
            receive_budget_exhausted=self.budget_exhausted,
        )
