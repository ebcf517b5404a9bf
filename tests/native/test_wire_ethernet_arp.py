"""Ethernet II frames and ARP packets: round trips, what is refused and why,
MAC address helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardio_net.native.wire.arp import (
    REPLY,
    REQUEST,
    ArpPacket,
    arp_header,
    parse_arp,
)
from shardio_net.native.wire.errors import Malformed
from shardio_net.native.wire.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    EthernetFrame,
    ethernet_header,
    format_mac,
    parse_ethernet,
    parse_mac,
)

macs = st.binary(min_size=6, max_size=6)
ipv4_addresses = st.integers(min_value=0, max_value=2**32 - 1)
ethertypes = st.integers(min_value=0x0600, max_value=0xFFFF).filter(
    lambda t: t not in (0x8100, 0x88A8)
)


@settings(max_examples=200, deadline=None)
@given(dst=macs, src=macs, ethertype=ethertypes, payload=st.binary(max_size=100))
def test_ethernet_frame_round_trips(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = EthernetFrame(dst, src, ethertype)
    header = ethernet_header(frame)
    assert len(header) == 14
    parsed = parse_ethernet(header + payload)
    assert parsed == EthernetFrame(dst, src, ethertype, memoryview(payload))


def test_ethernet_payload_is_a_view_of_the_frame_not_a_copy() -> None:
    buffer = bytearray(ethernet_header(EthernetFrame(BROADCAST, b"\x02" * 6, 0x0800)) + b"abcd")
    frame = parse_ethernet(buffer)
    buffer[14] = ord("X")
    assert bytes(frame.payload) == b"Xbcd"


def test_vlan_tagged_frame_is_malformed_and_says_vlans_are_not_supported() -> None:
    tagged = BROADCAST + b"\x02" * 6 + b"\x81\x00\x00\x05\x08\x00" + bytes(46)
    with pytest.raises(Malformed) as caught:
        parse_ethernet(tagged)
    assert caught.value.reason == "ethernet: VLAN-tagged frame (802.1Q), VLANs are not supported"
    qinq = BROADCAST + b"\x02" * 6 + b"\x88\xa8\x00\x05\x81\x00\x00\x06\x08\x00" + bytes(42)
    with pytest.raises(Malformed, match="VLAN"):
        parse_ethernet(qinq)


def test_ieee_802_3_frame_with_a_length_field_is_malformed() -> None:
    # A spanning-tree BPDU: a length (0x0026) where Ethernet II has a type.
    bpdu = bytes.fromhex("0180c2000000") + b"\x02" * 6 + b"\x00\x26" + bytes(46)
    with pytest.raises(Malformed, match=r"802\.3 length field"):
        parse_ethernet(bpdu)


def test_frame_shorter_than_the_header_is_malformed() -> None:
    with pytest.raises(Malformed, match="shorter than 14"):
        parse_ethernet(bytes(13))


def test_ethernet_header_refuses_a_mac_that_is_not_6_bytes() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        ethernet_header(EthernetFrame(b"\x01" * 5, b"\x02" * 6, ETHERTYPE_IPV4))


@given(mac=macs)
def test_mac_address_text_round_trips(mac: bytes) -> None:
    text = format_mac(mac)
    assert len(text) == 17
    assert parse_mac(text) == mac
    assert parse_mac(text.replace(":", "-").upper()) == mac


@pytest.mark.parametrize(
    "text", ["02:00:00:00:00", "02:00:00:00:00:01:03", "0g:00:00:00:00:01", "020000000001", ""]
)
def test_text_that_is_not_a_mac_address_is_a_value_error_quoting_it(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address") as caught:
        parse_mac(text)
    assert repr(text) in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(
    operation=st.sampled_from([REQUEST, REPLY]),
    sender_mac=macs,
    sender_ip=ipv4_addresses,
    target_mac=macs,
    target_ip=ipv4_addresses,
)
def test_arp_packet_round_trips(
    operation: int, sender_mac: bytes, sender_ip: int, target_mac: bytes, target_ip: int
) -> None:
    packet = ArpPacket(operation, sender_mac, sender_ip, target_mac, target_ip)
    raw = arp_header(packet)
    assert len(raw) == 28
    assert parse_arp(memoryview(raw)) == packet


def test_arp_in_a_padded_minimum_size_frame_ignores_the_padding() -> None:
    request = ArpPacket(REQUEST, b"\x02" * 6, 0x0A000001, bytes(6), 0x0A000002)
    frame = ethernet_header(EthernetFrame(BROADCAST, b"\x02" * 6, ETHERTYPE_ARP)) + arp_header(
        request
    )
    padded = frame + bytes(60 - len(frame))
    assert parse_arp(parse_ethernet(padded).payload) == request


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (b"\x00\x06\x08\x00\x06\x04", "arp: not IPv4 over Ethernet"),  # IEEE 802 hardware
        (b"\x00\x01\x86\xdd\x06\x10", "arp: not IPv4 over Ethernet"),  # IPv6 protocol
        (b"\x00\x01\x08\x00\x06\x04\x00\x03", "arp: operation is neither request nor reply"),
    ],
)
def test_arp_for_anything_but_ipv4_over_ethernet_request_or_reply_is_malformed(
    prefix: bytes, reason: str
) -> None:
    valid = arp_header(ArpPacket(REQUEST, b"\x02" * 6, 1, bytes(6), 2))
    with pytest.raises(Malformed) as caught:
        parse_arp(memoryview(prefix + valid[len(prefix) :]))
    assert caught.value.reason == reason


def test_truncated_arp_is_malformed() -> None:
    valid = arp_header(ArpPacket(REPLY, b"\x02" * 6, 1, b"\x04" * 6, 2))
    with pytest.raises(Malformed, match="shorter than 28"):
        parse_arp(memoryview(valid[:27]))
