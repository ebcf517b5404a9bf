"""Sequence-number arithmetic: 32-bit modular comparisons, and unwrapping.

TCP sequence numbers (and acknowledgement numbers, SACK edges, timestamps)
are 32-bit counters that wrap: ``0xFFFF_FFFF + 1 == 0``. Two of them compare
by the sign of their difference modulo 2**32 (RFC 9293 section 3.4, RFC 1982
serial-number arithmetic): ``a`` is before ``b`` when ``b - a`` taken modulo
2**32 lies in ``[1, 2**31)``. Plain ``<`` on the wire values is wrong as soon as
a connection crosses the wrap, so on wire values use :func:`seq_lt` and
friends, never ``<``.

The connection itself does something simpler and faster: it never stores a
32-bit sequence number. Python integers do not overflow, so each connection
numbers its bytes with *absolute* integers that start at the initial sequence
number and only grow (the 64-bit sequence space QUIC and Linux's internal
``tcp_skb_cb`` counters approximate). A 32-bit number from the wire is turned
into the absolute number nearest to a reference the connection knows -- the
next expected byte for a sequence number, the oldest unacknowledged byte for
an acknowledgement -- by :func:`unwrap`; going back to the wire is ``& 0xFFFFFFFF``.
Everything in between is plain integer arithmetic with ``<``, which is both
clearer and several times cheaper than a modular comparison per test. The
nearest-value rule is exactly the modular comparison rule: a wire value up to
2**31 - 1 ahead of the reference unwraps ahead of it, anything else behind.
"""

from __future__ import annotations

__all__ = ["SEQ_MASK", "seq_ge", "seq_gt", "seq_le", "seq_lt", "unwrap"]

#: Sequence numbers are taken modulo 2**32: ``value & SEQ_MASK`` is the wire value.
SEQ_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000


def seq_lt(a: int, b: int) -> bool:
    """Whether the 32-bit sequence number ``a`` comes before ``b``."""
    return ((a - b) & SEQ_MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    """Whether the 32-bit sequence number ``a`` comes before ``b`` or is ``b``."""
    return ((b - a) & SEQ_MASK) < _HALF


def seq_gt(a: int, b: int) -> bool:
    """Whether the 32-bit sequence number ``a`` comes after ``b``."""
    return ((b - a) & SEQ_MASK) >= _HALF


def seq_ge(a: int, b: int) -> bool:
    """Whether the 32-bit sequence number ``a`` comes after ``b`` or is ``b``."""
    return ((a - b) & SEQ_MASK) < _HALF


def unwrap(value: int, reference: int) -> int:
    """The absolute number nearest to ``reference`` whose low 32 bits are ``value``.

    ``reference`` is an absolute (unbounded) sequence number; ``value`` a
    32-bit one from the wire. The result lies in
    ``[reference - 2**31, reference + 2**31)``.
    """
    return reference + ((value - reference + _HALF) & SEQ_MASK) - _HALF
