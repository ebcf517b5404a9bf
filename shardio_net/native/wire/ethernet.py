"""Ethernet II frames (IEEE 802.3 with an EtherType): destination, source, type.

The 14-byte header is all there is: the preamble and the frame check sequence
are the NIC's (a TAP device and the simulated link carry neither), so a frame
here starts at the destination address and ends with the payload and any
padding up to the 60-byte minimum, which the layer above trims by its own
length field (IPv4's total length, ARP's fixed size).

Two kinds of frame are refused with :class:`Malformed`, each with its own
reason so the interface's statistics tell them apart from damage: frames with
an 802.1Q or 802.1ad VLAN tag (type 0x8100, 0x88a8: the stack has no VLANs, and
the tag would otherwise be read as the start of the payload), and IEEE 802.3
frames whose type field is a length (below 0x0600, e.g. spanning-tree BPDUs on
a bridge), which carry LLC, not IP.

MAC addresses are 6-byte ``bytes``; :func:`parse_mac` and :func:`format_mac`
convert them from and to the usual ``"02:00:00:00:00:01"``.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

import attrs

from ._views import EMPTY
from .errors import Malformed

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "BROADCAST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "HEADER_LENGTH",
    "MIN_FRAME_LENGTH",
    "EthernetFrame",
    "ethernet_header",
    "format_mac",
    "parse_ethernet",
    "parse_mac",
]

#: The length of an Ethernet II header: destination, source, EtherType.
HEADER_LENGTH = 14
#: The shortest frame a real link carries, without its 4-byte FCS: shorter
#: frames are padded with zeros to this length when sent on a wire (RFC 894).
MIN_FRAME_LENGTH = 60
#: The broadcast address, ff:ff:ff:ff:ff:ff.
BROADCAST = b"\xff" * 6

#: EtherType of an IPv4 packet.
ETHERTYPE_IPV4 = 0x0800
#: EtherType of an ARP packet.
ETHERTYPE_ARP = 0x0806
#: EtherType of an IPv6 packet (not handled by the stack, named for the
#: interface's statistics).
ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = 0x8100
_ETHERTYPE_QINQ = 0x88A8
_ETHERTYPE_MIN = 0x0600

_HEADER = struct.Struct("!6s6sH")
_MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")


@attrs.define(slots=True)
class EthernetFrame:
    """An Ethernet II frame: addresses as 6-byte ``bytes``, the EtherType as an int.

    Parsed, ``payload`` is a view of the frame after the header (any padding
    included). The emitter ignores it.
    """

    dst: bytes
    src: bytes
    ethertype: int
    payload: memoryview = EMPTY


def parse_ethernet(frame: Buffer) -> EthernetFrame:
    """Parse a whole Ethernet frame; the payload is a view into *frame*.

    Raises :class:`Malformed` for a frame shorter than the header, a
    VLAN-tagged frame, or an IEEE 802.3 length-field frame.
    """
    view = memoryview(frame)
    if view.itemsize != 1:
        view = view.cast("B")
    if len(view) < HEADER_LENGTH:
        raise Malformed("ethernet: frame shorter than 14 bytes")
    dst, src, ethertype = _HEADER.unpack_from(view)
    if ethertype < _ETHERTYPE_MIN:
        raise Malformed("ethernet: IEEE 802.3 length field, not an EtherType")
    if ethertype in (_ETHERTYPE_VLAN, _ETHERTYPE_QINQ):
        raise Malformed("ethernet: VLAN-tagged frame (802.1Q), VLANs are not supported")
    return EthernetFrame(dst, src, ethertype, view[HEADER_LENGTH:])


def ethernet_header(frame: EthernetFrame) -> bytes:
    """The 14-byte header of *frame* (its payload is not used: send it after)."""
    if len(frame.dst) != 6 or len(frame.src) != 6:
        raise ValueError(
            f"MAC addresses are 6 bytes, got {len(frame.dst)} (dst) and {len(frame.src)} (src)"
        )
    return _HEADER.pack(frame.dst, frame.src, frame.ethertype)


def parse_mac(text: str) -> bytes:
    """``"02:00:00:00:00:01"`` (or with ``-``) -> 6 bytes; ``ValueError`` if it is not one."""
    if _MAC_TEXT.fullmatch(text) is None:
        raise ValueError(f"not a MAC address (six hex pairs like 02:00:00:00:00:01): {text!r}")
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def format_mac(mac: bytes) -> str:
    """6 bytes -> ``"02:00:00:00:00:01"``."""
    if len(mac) != 6:
        raise ValueError(f"a MAC address is 6 bytes, got {len(mac)}")
    return mac.hex(":")
