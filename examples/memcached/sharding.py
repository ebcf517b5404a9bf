"""Which shard owns a key.

Keys are spread over shards by a hash that is the same in every process and
every run (Python's ``hash()`` of bytes is salted per process, so it cannot be
used: each shard is its own process). CRC-32 (``zlib.crc32``, in C) is fast on
short keys and spreads them evenly; the shard is the hash modulo the shard
count, so every shard computes the same owner for a key without talking to
the others.
"""

from __future__ import annotations

import zlib

__all__ = ["shard_for_key"]


def shard_for_key(key: bytes, shards: int) -> int:
    """The shard, in ``range(shards)``, that owns ``key``."""
    if shards == 1:
        return 0
    return zlib.crc32(key) % shards
