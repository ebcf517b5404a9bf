"""The empty view: the default payload of every parsed packet."""

from __future__ import annotations

__all__ = ["EMPTY"]

#: A zero-length ``memoryview``: the payload of a packet that carries none,
#: and the default of every repr's ``payload``. One object, shared, since an
#: empty view cannot be written through.
EMPTY = memoryview(b"")
