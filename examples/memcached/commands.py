"""The classic commands on one shard's cache, and the bytes of their replies.

Each function here runs one request about keys this shard owns (the
routing in :mod:`.engine` sent it here) and returns exactly what memcached
1.6 would write for it: a reply line -- ``STORED``, ``NOT_FOUND``, a
number, an error -- or, for a retrieval, one ``VALUE`` block per key found.
The cache (:mod:`.store`) decides what happens; this module only words it,
and counts the misses memcached counts where it words them. The meta
commands, whose replies are built flag by flag, are in :mod:`.meta`.

``noreply`` silences every reply of a command, error lines included, as in
memcached: :func:`line` returns nothing then.
"""

from __future__ import annotations

from . import protocol as p
from .store import ArithmeticResult, Cache, Item

__all__ = ["arithmetic", "delete", "fetch", "line", "store", "too_large", "touch"]


def line(text: bytes | str, noreply: bool = False) -> bytes:
    """``text`` as a reply line (with its ``\\r\\n``); nothing if ``noreply``."""
    if noreply:
        return b""
    if isinstance(text, str):
        text = text.encode()
    return text + b"\r\n"


def _value_block(item: Item, with_cas: bool) -> bytes:
    """``VALUE <key> <flags> <bytes> [<cas>]`` and the data."""
    header = b"VALUE %s %d %d" % (item.key, item.flags, len(item.value))
    if with_cas:
        header += b" %d" % item.cas
    return b"".join((header, b"\r\n", item.value, b"\r\n"))


def fetch(
    cache: Cache, keys: tuple[bytes, ...], with_cas: bool, exptime: int | None
) -> list[bytes]:
    """``get``/``gets`` (or, with ``exptime``, ``gat``/``gats``) of ``keys``:
    one ``VALUE`` block per key, b"" for a key not found. The caller puts
    the blocks of every owner in request order and adds ``END``."""
    blocks: list[bytes] = []
    for key in keys:
        item = cache.retrieve(key, exptime)
        blocks.append(b"" if item is None else _value_block(item, with_cas))
    return blocks


def store(cache: Cache, request: p.Store) -> bytes:
    """``set``/``add``/``replace``/``append``/``prepend``/``cas``."""
    result, _ = cache.store(
        request.verb,
        request.key,
        request.flags,
        request.exptime,
        request.value,
        request.cas_unique,
    )
    return line(result.value, request.noreply)


def too_large(cache: Cache, request: p.StoreTooLarge) -> bytes:
    """A storage command whose item exceeds ``-I`` (its data was never kept)."""
    cache.too_large(request.verb, request.key)
    return line(b"SERVER_ERROR object too large for cache", request.noreply)


def delete(cache: Cache, request: p.Delete) -> bytes:
    """``delete``."""
    deleted = cache.delete(request.key)
    return line(b"DELETED" if deleted else b"NOT_FOUND", request.noreply)


def arithmetic(cache: Cache, request: p.Arithmetic) -> bytes:
    """``incr``/``decr``: the new value, or why there is none."""
    outcome, _ = cache.arithmetic(request.key, request.incr, request.delta)
    if outcome is ArithmeticResult.NOT_FOUND:
        cache.counters["incr_misses" if request.incr else "decr_misses"] += 1
    if isinstance(outcome, ArithmeticResult):
        return line(outcome.value, request.noreply)
    return line(b"%d" % outcome, request.noreply)


def touch(cache: Cache, request: p.Touch) -> bytes:
    """``touch``."""
    touched = cache.touch(request.key, request.exptime)
    return line(b"TOUCHED" if touched else b"NOT_FOUND", request.noreply)
