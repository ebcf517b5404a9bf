"""DHCP messages: what the emitter writes parses back to the same fields, the
bytes are where RFC 2131 puts them, and hostile bytes only ever give Malformed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardio_net.native.dhcp.message import (
    ACK,
    BOOTREPLY,
    BOOTREQUEST,
    DISCOVER,
    INFORM,
    REQUEST,
    DhcpMessage,
    dhcp_message,
    parse_dhcp,
)
from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.ipv4 import parse_address

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAC = bytes.fromhex("020000000001")
SERVER = parse_address("10.99.0.1")
OFFERED = parse_address("10.99.0.57")


def _ack() -> DhcpMessage:
    return DhcpMessage(
        op=BOOTREPLY,
        message_type=ACK,
        xid=0x12345678,
        chaddr=MAC,
        secs=3,
        yiaddr=OFFERED,
        siaddr=SERVER,
        subnet_mask=0xFFFFFF00,
        routers=(SERVER, parse_address("10.99.0.2")),
        dns_servers=(SERVER,),
        lease_time=43200,
        server_id=SERVER,
        renewal_time=21600,
        rebinding_time=37800,
        client_id=b"\x01" + MAC,
        host_name=b"shard0",
        message=b"ok",
        options={15: b"example.test"},
    )


def _fields(message: DhcpMessage) -> dict[str, object]:
    fields = {name: getattr(message, name) for name in DhcpMessage.__slots__ if name != "options"}
    fields.pop("__weakref__", None)
    return fields


def test_an_ack_with_every_option_parses_back_to_the_same_fields() -> None:
    message = _ack()
    parsed = parse_dhcp(dhcp_message(message))
    assert _fields(parsed) == _fields(message)
    assert parsed.options[15] == b"example.test"
    assert parsed.options[53] == bytes((ACK,))


def test_the_fixed_fields_and_the_cookie_are_where_rfc_2131_puts_them() -> None:
    message = DhcpMessage(
        op=BOOTREQUEST,
        message_type=REQUEST,
        xid=0xCAFEF00D,
        chaddr=MAC,
        secs=7,
        flags=0x8000,
        ciaddr=OFFERED,
        requested_address=OFFERED,
        server_id=SERVER,
        parameter_requests=(1, 3, 6),
    )
    data = dhcp_message(message)
    assert len(data) == 300  # padded to BOOTP's minimum
    assert data[:4] == b"\x01\x01\x06\x00"  # op, htype Ethernet, hlen 6, hops
    assert struct.unpack_from("!IHH", data, 4) == (0xCAFEF00D, 7, 0x8000)
    assert data[12:16] == OFFERED.to_bytes(4, "big")  # ciaddr
    assert data[28:34] == MAC and data[34:44] == bytes(10)
    assert data[236:240] == bytes([99, 130, 83, 99])
    assert data[240:243] == b"\x35\x01\x03"  # option 53 first: a REQUEST
    options = data[243:]
    assert b"\x32\x04" + OFFERED.to_bytes(4, "big") in options
    assert b"\x36\x04" + SERVER.to_bytes(4, "big") in options
    assert b"\x37\x03\x01\x03\x06" in options
    end = options.index(b"\xff")
    assert options[end + 1 :] == bytes(len(options) - end - 1)


def test_a_repeated_option_is_joined_as_rfc_3396_says() -> None:
    data = bytearray(dhcp_message(DhcpMessage(BOOTREPLY, ACK, 1, MAC)))
    end = data.index(b"\xff", 240)
    data[end:end] = b"\x06\x04\x0a\x00\x00\x01" + b"\x06\x04\x0a\x00\x00\x02"
    assert parse_dhcp(bytes(data)).dns_servers == (0x0A000001, 0x0A000002)


@pytest.mark.parametrize(("overload", "field"), [(1, slice(108, 236)), (2, slice(44, 108))])
def test_options_overloaded_into_file_or_sname_are_read(overload: int, field: slice) -> None:
    data = bytearray(dhcp_message(DhcpMessage(BOOTREPLY, ACK, 1, MAC)))
    end = data.index(b"\xff", 240)
    data[end:end] = bytes((52, 1, overload))
    extra = b"\x33\x04\x00\x00\x0e\x10\xff"  # lease time 3600, End
    data[field.start : field.start + len(extra)] = extra
    assert parse_dhcp(bytes(data)).lease_time == 3600


def test_a_message_without_an_end_option_still_parses() -> None:
    data = dhcp_message(DhcpMessage(BOOTREPLY, ACK, 1, MAC, lease_time=60))
    end = data.index(b"\xff", 240)
    assert parse_dhcp(data[:end]).lease_time == 60


def _valid() -> bytes:
    return dhcp_message(DhcpMessage(BOOTREPLY, ACK, 1, MAC))


def _with_option(option: bytes) -> bytes:
    data = bytearray(_valid())
    end = data.index(b"\xff", 240)
    data[end:end] = option
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_valid()[:239], "dhcp: shorter than 240 bytes"),
        (b"\x03" + _valid()[1:], "dhcp: op is neither request nor reply"),
        (_valid()[:1] + b"\x06" + _valid()[2:], "dhcp: hardware address is not Ethernet"),
        (_valid()[:236] + b"\x00\x00\x00\x00" + _valid()[240:], "dhcp: no magic cookie"),
        (_valid()[:240] + b"\x35\x01\x05\x33", "dhcp: option runs past the end"),
        (_valid()[:240] + b"\x35\x01\x05\x33\x04\x00", "dhcp: option runs past the end"),
        (_valid()[:240] + b"\xff", "dhcp: no message type"),
        (_valid()[:240] + b"\x35\x01\x09\xff", "dhcp: bad message type"),
        (_with_option(b"\x34\x01\x04"), "dhcp: bad option overload"),
        (_with_option(b"\x01\x03\xff\xff\xff"), "dhcp: subnet mask is not 4 bytes"),
        (_with_option(b"\x03\x05\x0a\x00\x00\x01\x00"), "dhcp: router option is not addresses"),
        (_with_option(b"\x33\x02\x00\x01"), "dhcp: lease time is not 4 bytes"),
        (_with_option(b"\x36\x00"), "dhcp: server identifier is not 4 bytes"),
        (_with_option(b"\x3d\x01\x01"), "dhcp: client identifier shorter than 2 bytes"),
    ],
)
def test_a_malformed_message_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_dhcp(data)
    assert caught.value.reason.startswith(reason)


def test_the_emitter_refuses_what_cannot_go_on_the_wire() -> None:
    with pytest.raises(ValueError, match="6-byte Ethernet address"):
        dhcp_message(DhcpMessage(BOOTREQUEST, DISCOVER, 1, b"\x02" * 16))
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        dhcp_message(DhcpMessage(BOOTREQUEST, DISCOVER, 1, MAC, host_name=b"x" * 256))
    with pytest.raises(ValueError, match="message type is from 1 to 8"):
        dhcp_message(DhcpMessage(BOOTREQUEST, INFORM + 1, 1, MAC))


addresses = st.integers(0, 0xFFFFFFFF)
# The options a typed field of DhcpMessage stands for.
TYPED = {1, 3, 6, 12, 50, 51, 53, 54, 55, 56, 58, 59, 61}


@FUZZ
@given(
    st.builds(
        DhcpMessage,
        op=st.sampled_from((BOOTREQUEST, BOOTREPLY)),
        message_type=st.integers(DISCOVER, INFORM),
        xid=addresses,
        chaddr=st.binary(min_size=6, max_size=6),
        secs=st.integers(0, 0xFFFF),
        flags=st.integers(0, 0xFFFF),
        ciaddr=addresses,
        yiaddr=addresses,
        siaddr=addresses,
        giaddr=addresses,
        hops=st.integers(0, 255),
        subnet_mask=st.none() | addresses,
        routers=st.lists(addresses, max_size=8).map(tuple),
        dns_servers=st.lists(addresses, max_size=8).map(tuple),
        host_name=st.none() | st.binary(min_size=1, max_size=255),
        requested_address=st.none() | addresses,
        lease_time=st.none() | addresses,
        server_id=st.none() | addresses,
        parameter_requests=st.lists(st.integers(0, 255), max_size=20).map(tuple),
        message=st.none() | st.binary(min_size=1, max_size=255),
        renewal_time=st.none() | addresses,
        rebinding_time=st.none() | addresses,
        client_id=st.none() | st.binary(min_size=2, max_size=255),
        options=st.dictionaries(
            st.integers(1, 254).filter(lambda code: code not in TYPED and code != 52),
            st.binary(min_size=1, max_size=40),
            max_size=4,
        ),
    )
)
def test_every_message_the_emitter_writes_parses_back(message: DhcpMessage) -> None:
    parsed = parse_dhcp(dhcp_message(message))
    assert _fields(parsed) == _fields(message)
    assert {code: parsed.options[code] for code in message.options} == message.options


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_give_a_message_or_malformed_and_nothing_else(data: bytes) -> None:
    try:
        parse_dhcp(data)
    except Malformed:
        pass


@FUZZ
@given(st.data())
def test_mutated_messages_give_a_message_or_malformed_and_nothing_else(data: st.DataObject) -> None:
    packet = bytearray(dhcp_message(_ack()))
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(236, len(packet) - 1))
        packet[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(200, len(packet)))
    try:
        message = parse_dhcp(bytes(packet[:cut]))
    except Malformed:
        return
    assert DISCOVER <= message.message_type <= INFORM
    assert len(message.chaddr) == 6
