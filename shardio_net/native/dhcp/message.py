"""DHCP messages (RFC 2131) and the options of RFC 2132 a client needs: parse and emit.

A DHCP message is a BOOTP message (RFC 951) with the *magic cookie*
99.130.83.99 after its fixed part, and options after the cookie. It travels
in a UDP datagram between port 68 (the client) and port 67 (the server)::

    op(1) htype(1) hlen(1) hops(1) xid(4) secs(2) flags(2)
    ciaddr(4) yiaddr(4) siaddr(4) giaddr(4) chaddr(16) sname(64) file(128)
    cookie(4) options...

``op`` is 1 from a client (BOOTREQUEST) and 2 from a server (BOOTREPLY);
``htype``/``hlen`` say what ``chaddr`` holds (1 and 6: an Ethernet address,
the only kind here); ``xid`` ties an answer to its request; ``secs`` is how
long the client has been trying; ``flags`` has one bit, BROADCAST (0x8000),
by which a client that cannot take unicast before it has an address asks for
broadcast answers (we can take them, so we do not set it). ``ciaddr`` is the
client's address when it has one (renewing), ``yiaddr`` the address a server
offers or confirms, ``siaddr`` and ``giaddr`` a boot server and a relay.

Options
-------
Each option is a code byte, a length byte and that many bytes, except Pad
(0: one byte) and End (255: the last). Those this client uses, with the
checks the parser makes (a typed field of :class:`DhcpMessage` each):

==== ========================= ============================================
code option                    value
==== ========================= ============================================
1    subnet mask               4 bytes
3    router                    addresses, 4 bytes each, at least one
6    domain name server        the same
12   host name                 1 byte or more
50   requested IP address      4 bytes
51   IP address lease time     4 bytes: seconds; 0xffffffff is infinite
53   DHCP message type         1 byte: DISCOVER 1 .. INFORM 8 (required)
54   server identifier         4 bytes: the server's address
55   parameter request list    option codes, 1 byte each, at least one
56   message                   text (why a server refused: in a DHCPNAK)
58   renewal (T1) time         4 bytes: seconds
59   rebinding (T2) time       4 bytes: seconds
61   client identifier         2 bytes or more (a type byte, then an id)
==== ========================= ============================================

Every option, these and the others, is also kept raw in ``options`` (a dict
code -> bytes). An option may appear more than once; its pieces are then
concatenated in order, as RFC 3396 says (a long option is sent split). A
server short of room may *overload* the ``file`` and ``sname`` fields with
more options (option 52: 1 the file, 2 the sname, 3 both, read in that
order); the parser reads them.

Checks
------
The parser raises :class:`~shardio_net.native.wire.errors.Malformed`, and
nothing else, whatever the bytes (the tests hold it to that with hypothesis):
shorter than the 240 bytes of the fixed part and the cookie, an ``op`` other
than 1 or 2, a hardware address that is not Ethernet, no magic cookie (a
plain BOOTP message), an option running past the end of its area, a bad
overload value, no message type or an unknown one, and any option of the
table above with a length its value cannot have. A missing End option is
accepted (the area ends anyway), as are unknown options; Pad bytes after End
are the padding of a message to 300 bytes.

The emitter takes the fields of a :class:`DhcpMessage` and returns the whole
UDP payload (a few hundred bytes: building it in one ``bytes`` is cheaper than
any vectored scheme), padded to the 300 bytes that BOOTP relays and old
servers expect (RFC 1542 2.1). ``options`` are emitted after the typed ones,
except the codes a typed field already emitted. A value that cannot be put
on the wire (a chaddr that is not 6 bytes, an option over 255 bytes) is a
``ValueError``: the input comes from the stack, not from the network.
"""

from __future__ import annotations

import struct

import attrs

from ..wire.errors import Malformed

__all__ = [
    "ACK",
    "BOOTREPLY",
    "BOOTREQUEST",
    "BROADCAST_FLAG",
    "CLIENT_PORT",
    "DECLINE",
    "DISCOVER",
    "INFINITE",
    "INFORM",
    "NAK",
    "OFFER",
    "RELEASE",
    "REQUEST",
    "SERVER_PORT",
    "DhcpMessage",
    "dhcp_message",
    "parse_dhcp",
]

#: UDP ports: the server listens on 67, the client on 68.
SERVER_PORT = 67
CLIENT_PORT = 68

#: ``op``: from a client, from a server.
BOOTREQUEST = 1
BOOTREPLY = 2

#: The message types (option 53).
DISCOVER = 1
OFFER = 2
REQUEST = 3
DECLINE = 4
ACK = 5
NAK = 6
RELEASE = 7
INFORM = 8

#: The one bit of ``flags``: answer by broadcast.
BROADCAST_FLAG = 0x8000
#: A lease time of 0xffffffff seconds: the lease never ends.
INFINITE = 0xFFFFFFFF

# Option codes.
_PAD = 0
_SUBNET_MASK = 1
_ROUTER = 3
_DNS = 6
_HOST_NAME = 12
_REQUESTED_ADDRESS = 50
_LEASE_TIME = 51
_OVERLOAD = 52
_MESSAGE_TYPE = 53
_SERVER_ID = 54
_PARAMETER_REQUESTS = 55
_MESSAGE = 56
_RENEWAL_TIME = 58
_REBINDING_TIME = 59
_CLIENT_ID = 61
_END = 255

_COOKIE = b"\x63\x82\x53\x63"
# op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr(16)
_FIXED = struct.Struct("!BBBBIHHIIII16s")
_SNAME = slice(44, 108)
_FILE = slice(108, 236)
#: The fixed part and the cookie: the shortest DHCP message.
MINIMUM_LENGTH = 240
# BOOTP's minimum message (RFC 951, RFC 1542 2.1): we pad to it.
_PADDED_LENGTH = 300


def _address(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _addresses(value: bytes) -> tuple[int, ...]:
    return tuple(_address(value[i : i + 4]) for i in range(0, len(value), 4))


@attrs.define(slots=True)
class DhcpMessage:
    """A DHCP message's fields and the options a client uses (see the module
    docs for each); addresses are ints, ``chaddr`` is the 6-byte MAC.

    Parsed, ``options`` holds every option as received (code -> bytes, pieces
    of a repeated option joined). To emit, ``options`` holds options to send
    besides the typed ones.
    """

    op: int
    message_type: int
    xid: int
    chaddr: bytes
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    hops: int = 0
    subnet_mask: int | None = None
    routers: tuple[int, ...] = ()
    dns_servers: tuple[int, ...] = ()
    host_name: bytes | None = None
    requested_address: int | None = None
    #: Seconds, or :data:`INFINITE`.
    lease_time: int | None = None
    server_id: int | None = None
    parameter_requests: tuple[int, ...] = ()
    message: bytes | None = None
    renewal_time: int | None = None
    rebinding_time: int | None = None
    client_id: bytes | None = None
    options: dict[int, bytes] = attrs.field(factory=dict)


def _read_options(area: memoryview, into: dict[int, bytes]) -> None:
    """Read the options in ``area`` into ``into``, joining repeated ones."""
    index = 0
    end = len(area)
    while index < end:
        code = area[index]
        if code == _PAD:
            index += 1
            continue
        if code == _END:
            return
        if index + 1 >= end:
            raise Malformed("dhcp: option runs past the end")
        length = area[index + 1]
        start = index + 2
        index = start + length
        if index > end:
            raise Malformed("dhcp: option runs past the end")
        value = bytes(area[start:index])
        held = into.get(code)
        into[code] = value if held is None else held + value


def _fixed(options: dict[int, bytes], code: int, length: int, reason: str) -> bytes | None:
    value = options.get(code)
    if value is not None and len(value) != length:
        raise Malformed(reason)
    return value


def _list(options: dict[int, bytes], code: int, reason: str) -> bytes:
    value = options.get(code, b"")
    if code in options and (not value or len(value) % 4):
        raise Malformed(reason)
    return value


def parse_dhcp(data: memoryview | bytes) -> DhcpMessage:
    """Parse a DHCP message (a UDP payload). Raises
    :class:`~shardio_net.native.wire.errors.Malformed`, and only that."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if len(view) < MINIMUM_LENGTH:
        raise Malformed("dhcp: shorter than 240 bytes")
    op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr = (
        _FIXED.unpack_from(view)
    )
    if op != BOOTREQUEST and op != BOOTREPLY:
        raise Malformed("dhcp: op is neither request nor reply")
    if htype != 1 or hlen != 6:
        raise Malformed("dhcp: hardware address is not Ethernet")
    if view[236:240] != _COOKIE:
        raise Malformed("dhcp: no magic cookie (a BOOTP message)")
    options: dict[int, bytes] = {}
    _read_options(view[MINIMUM_LENGTH:], options)
    overload = options.get(_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise Malformed("dhcp: bad option overload")
        # RFC 2131 4.1: the options field first, then file, then sname.
        if overload[0] & 1:
            _read_options(view[_FILE], options)
        if overload[0] & 2:
            _read_options(view[_SNAME], options)
    kind = options.get(_MESSAGE_TYPE)
    if kind is None:
        raise Malformed("dhcp: no message type")
    if len(kind) != 1 or not DISCOVER <= kind[0] <= INFORM:
        raise Malformed("dhcp: bad message type")
    mask = _fixed(options, _SUBNET_MASK, 4, "dhcp: subnet mask is not 4 bytes")
    requested = _fixed(options, _REQUESTED_ADDRESS, 4, "dhcp: requested address is not 4 bytes")
    lease = _fixed(options, _LEASE_TIME, 4, "dhcp: lease time is not 4 bytes")
    server = _fixed(options, _SERVER_ID, 4, "dhcp: server identifier is not 4 bytes")
    renewal = _fixed(options, _RENEWAL_TIME, 4, "dhcp: renewal time is not 4 bytes")
    rebinding = _fixed(options, _REBINDING_TIME, 4, "dhcp: rebinding time is not 4 bytes")
    routers = _list(options, _ROUTER, "dhcp: router option is not addresses")
    dns = _list(options, _DNS, "dhcp: name server option is not addresses")
    host_name = options.get(_HOST_NAME)
    if host_name is not None and not host_name:
        raise Malformed("dhcp: empty host name")
    requests = options.get(_PARAMETER_REQUESTS)
    if requests is not None and not requests:
        raise Malformed("dhcp: empty parameter request list")
    client_id = options.get(_CLIENT_ID)
    if client_id is not None and len(client_id) < 2:
        raise Malformed("dhcp: client identifier shorter than 2 bytes")
    return DhcpMessage(
        op=op,
        message_type=kind[0],
        xid=xid,
        chaddr=chaddr[:6],
        secs=secs,
        flags=flags,
        ciaddr=ciaddr,
        yiaddr=yiaddr,
        siaddr=siaddr,
        giaddr=giaddr,
        hops=hops,
        subnet_mask=None if mask is None else _address(mask),
        routers=_addresses(routers),
        dns_servers=_addresses(dns),
        host_name=host_name,
        requested_address=None if requested is None else _address(requested),
        lease_time=None if lease is None else _address(lease),
        server_id=None if server is None else _address(server),
        parameter_requests=tuple(requests or b""),
        message=options.get(_MESSAGE),
        renewal_time=None if renewal is None else _address(renewal),
        rebinding_time=None if rebinding is None else _address(rebinding),
        client_id=client_id,
        options=options,
    )


def _option(code: int, value: bytes) -> bytes:
    if not 0 < len(value) <= 255:
        raise ValueError(f"DHCP option {code} must hold 1 to 255 bytes, not {len(value)}")
    return bytes((code, len(value))) + value


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def dhcp_message(message: DhcpMessage) -> bytes:
    """The UDP payload carrying ``message``, padded to 300 bytes."""
    if len(message.chaddr) != 6:
        raise ValueError(f"chaddr is a 6-byte Ethernet address, not {message.chaddr!r}")
    if not DISCOVER <= message.message_type <= INFORM:
        raise ValueError(f"a DHCP message type is from 1 to 8, not {message.message_type}")
    parts = [
        _FIXED.pack(
            message.op,
            1,
            6,
            message.hops,
            message.xid,
            min(message.secs, 0xFFFF),
            message.flags,
            message.ciaddr,
            message.yiaddr,
            message.siaddr,
            message.giaddr,
            message.chaddr,
        ),
        bytes(192),  # sname and file
        _COOKIE,
        _option(_MESSAGE_TYPE, bytes((message.message_type,))),
    ]
    emitted = {_MESSAGE_TYPE}

    def add(code: int, value: bytes | None) -> None:
        if value is not None:
            parts.append(_option(code, value))
            emitted.add(code)

    add(_CLIENT_ID, message.client_id)
    add(_SERVER_ID, None if message.server_id is None else _u32(message.server_id))
    add(
        _REQUESTED_ADDRESS,
        None if message.requested_address is None else _u32(message.requested_address),
    )
    add(_LEASE_TIME, None if message.lease_time is None else _u32(message.lease_time))
    add(_RENEWAL_TIME, None if message.renewal_time is None else _u32(message.renewal_time))
    add(_REBINDING_TIME, None if message.rebinding_time is None else _u32(message.rebinding_time))
    add(_SUBNET_MASK, None if message.subnet_mask is None else _u32(message.subnet_mask))
    add(_ROUTER, b"".join(map(_u32, message.routers)) or None)
    add(_DNS, b"".join(map(_u32, message.dns_servers)) or None)
    add(_HOST_NAME, message.host_name)
    add(_PARAMETER_REQUESTS, bytes(message.parameter_requests) or None)
    add(_MESSAGE, message.message)
    for code, value in message.options.items():
        if code not in emitted:
            if code in (_PAD, _END, _OVERLOAD):
                raise ValueError(f"DHCP option {code} is not one to send as an extra option")
            add(code, value)
    parts.append(bytes((_END,)))
    payload = b"".join(parts)
    if len(payload) < _PADDED_LENGTH:
        payload += bytes(_PADDED_LENGTH - len(payload))
    return payload
