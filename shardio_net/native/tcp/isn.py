"""Initial sequence numbers (RFC 6528) and timestamp offsets (RFC 7323 7.1).

An off-path attacker who can guess a connection's initial sequence number
can inject data into it or reset it; one who can guess the timestamps can
defeat PAWS. RFC 6528 makes the ISN unguessable yet still monotonic per
connection identity, which TIME_WAIT reuse relies on (a new incarnation of a
4-tuple must start above the old one's sequence numbers)::

    ISN = M + F(local address, local port, remote address, remote port, secret)

``M`` is a clock ticking every 4 microseconds (it wraps the 32-bit space in
about 4.8 hours, slower than any segment lives), ``F`` a keyed pseudorandom
function of the 4-tuple. We use keyed BLAKE2s for ``F`` (RFC 6528 suggests
MD5; any PRF will do, and BLAKE2s is in hashlib and faster). The secret comes
from the stack, which draws it once (``os.urandom``) -- or, in a
deterministic test, from a seed.

Timestamps get the same treatment: TSval is our millisecond clock plus an
offset that is a keyed function of the 4-tuple, so a peer learns nothing
about our uptime or about our other connections (RFC 7323 section 7.1;
Linux does the same).

Time is an argument here as everywhere in tcp/: the stack passes the
scheduler's clock.
"""

from __future__ import annotations

import hashlib

import attrs

__all__ = ["IsnGenerator"]

_MASK = 0xFFFF_FFFF


@attrs.define(eq=False, slots=True)
class IsnGenerator:
    """Makes initial sequence numbers and timestamp offsets from a secret."""

    #: The key of the pseudorandom function: 16 to 32 bytes.
    secret: bytes = attrs.field()

    @secret.validator
    def _check_secret(self, attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if not isinstance(value, bytes) or not 16 <= len(value) <= 32:
            raise ValueError(
                f"IsnGenerator needs a secret of 16 to 32 bytes (os.urandom(16)), not {value!r:.40}"
            )

    def _prf(self, label: bytes, local: tuple[int, int], remote: tuple[int, int]) -> int:
        data = b"%s %d %d %d %d" % (label, local[0], local[1], remote[0], remote[1])
        digest = hashlib.blake2s(data, key=self.secret, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def isn(self, local: tuple[int, int], remote: tuple[int, int], now: float) -> int:
        """The initial sequence number for a connection from ``local`` to ``remote``
        (each ``(IPv4 address as int, port)``) started at time ``now``."""
        return (int(now * 250_000) + self._prf(b"isn", local, remote)) & _MASK

    def timestamp_offset(self, local: tuple[int, int], remote: tuple[int, int]) -> int:
        """What a connection adds to its millisecond clock to make TSval."""
        return self._prf(b"ts", local, remote)
