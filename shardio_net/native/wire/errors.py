"""The one error a parser raises: :class:`Malformed`.

A packet that arrives from a network is untrusted input, and a bad one is an
everyday event, not a bug: a corrupted frame, a scanner's probe, a peer's bug.
The parsers in this package therefore promise one thing about bad input: they
raise :class:`Malformed` with a short reason, and nothing else, whatever the
bytes (the tests feed them random bytes and random mutations of valid packets
to hold them to it). The interface catches exactly this class, counts the
frame under its reason and drops it, so a malformed packet never escapes the
stack as an exception.

Emitters are different: their input comes from the stack itself, so a value
that cannot be put on the wire (a port above 65535, a SACK option that does
not fit) is a programming error and raises ``ValueError``, ``OverflowError`` or
``struct.error`` like any other bad argument.
"""

from __future__ import annotations

__all__ = ["Malformed"]


class Malformed(Exception):
    """A packet that cannot be parsed; ``reason`` says what was wrong with it.

    ``reason`` is short and fixed, starting with the format's name
    (``"tcp: bad checksum"``, ``"ipv4: header length < 20"``), so that the
    interface can count drops per reason in its statistics. A reason never
    includes a value from the packet: the table of counts stays small, whatever
    a hostile peer sends.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
