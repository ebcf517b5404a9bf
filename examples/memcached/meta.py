"""The meta commands (``mg``, ``ms``, ``md``, ``ma``, ``me``) on one shard's
cache, and the bytes of their replies.

A meta command's reply is a two-letter code (``HD``, ``VA``, ``EN``,
``NF``, ``EX``, ``NS``) followed by the return flags the request asked for,
in the order it asked for them: ``O`` (opaque) and ``k`` (key) are echoed,
``c``, ``f``, ``s``, ``t``... report the item. Each function here is the
memcached 1.6 function named in its docstring, kept exact where a client
can observe it: which flags change the item and when (``T``, ``N``, ``I``),
the win/stale/recache tokens of ``mg`` (``W``, ``X``, ``Z``), what ``q``
silences, and which statistics count. The flags themselves were parsed by
:mod:`.protocol` (:class:`~.protocol.MetaFlags`).
"""

from __future__ import annotations

import base64

from . import protocol as p
from .commands import line
from .store import ArithmeticResult, Cache, Item, StoreResult

__all__ = ["ma", "md", "me", "mg", "ms", "slab_class"]

_OPAQUE_TOO_LONG = b"CLIENT_ERROR opaque token too long"


class _OpaqueTooLong(Exception):
    """An ``O`` token longer than memcached keeps: the reply is an error
    line instead, whatever the command did."""


def _key_echo(key: bytes, binary: bool) -> bytes:
    """The ``k`` return flag: the key, in base64 (and ``b``) if it came so."""
    if binary:
        return b" k" + base64.b64encode(key) + b" b"
    return b" k" + key


def _echoes(flags: p.MetaFlags, key: bytes, binary: bool) -> bytes:
    """The ``O`` and ``k`` flags echoed in a reply without an item."""
    out = b""
    for token in flags.tokens:
        if token[0] == ord("O"):
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                raise _OpaqueTooLong
            out += b" " + token
        elif token[0] == ord("k"):
            out += _key_echo(key, binary)
    return out


def _ttl(cache: Cache, item: Item) -> bytes:
    """The ``t`` return flag: seconds left to live, -1 for never."""
    if item.exptime == 0:
        return b"-1"
    return b"%d" % ((item.exptime - cache.current_time) & 0xFFFFFFFF)


def mg(cache: Cache, request: p.MetaGet) -> bytes:
    """memcached's ``process_mget_command``."""
    flags = request.flags
    item = cache.find(request.key)
    created = False
    if item is None and flags.vivify_exptime is not None:
        fresh = cache.new_item(request.key, b"", 0, 0)
        if fresh is not None:
            fresh.key_binary = flags.key_binary
            cache.link(fresh)
            item, created = fresh, True
    if item is None:
        cache.counters["get_misses"] += 1
        cache.counters["cmd_get"] += 1
        try:
            echoes = _echoes(flags, request.key, flags.key_binary)
        except _OpaqueTooLong:
            return line(_OPAQUE_TOO_LONG)
        return line(b"EN" + echoes, flags.no_reply)
    out = [b"VA %d" % len(item.value) if flags.value else b"HD"]
    ttl_set = won = False
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "T" and flags.exptime is not None:
            ttl_set = True
            item.exptime = cache.realtime(flags.exptime)
        elif flag == "N" and created and flags.vivify_exptime is not None:
            item.exptime = cache.realtime(flags.vivify_exptime)
            won = True
        elif flag == "R" and flags.recache_exptime is not None:
            recache = cache.realtime(flags.recache_exptime)
            if not item.token_sent and not created and 0 != item.exptime < recache:
                won = True
        elif flag == "s":
            out.append(b" s%d" % len(item.value))
        elif flag == "t":
            out.append(b" t" + _ttl(cache, item))
        elif flag == "c":
            out.append(b" c%d" % item.cas)
        elif flag == "f":
            out.append(b" f%d" % item.flags)
        elif flag == "l":
            out.append(b" l%d" % ((cache.current_time - item.time) & 0xFFFFFFFF))
        elif flag == "h":
            out.append(b" h1" if item.fetched else b" h0")
        elif flag == "O":
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                return line(_OPAQUE_TOO_LONG)
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(item.key, item.key_binary))
    if item.token_sent:
        out.append(b" Z")
    if item.stale:
        out.append(b" X")
        if not item.token_sent:
            won = True
    if won:
        out.append(b" W")
        item.token_sent = True
    out.append(b"\r\n")
    if flags.value:
        out += (item.value, b"\r\n")
    if not flags.no_update:
        cache.bump(item)
    if ttl_set:
        cache.counters["cmd_touch"] += 1
        cache.counters["touch_hits"] += 1
    else:
        cache.counters["get_hits"] += 1
        cache.counters["cmd_get"] += 1
    return b"".join(out)


_META_SET_CODES = {
    StoreResult.STORED: b"HD",
    StoreResult.EXISTS: b"EX",
    StoreResult.NOT_FOUND: b"NF",
    StoreResult.NOT_STORED: b"NS",
}


def ms(cache: Cache, request: p.MetaSet) -> bytes:
    """memcached's ``process_mset_command`` and ``_finalize_mset``."""
    flags = request.flags
    verb: p.StoreVerb = "set"
    if flags.mode is not None:
        verb = p.META_MODES_SET[flags.mode]
    if flags.cas is not None and verb in ("set", "replace"):
        verb = "cas"
    result, item = cache.store(
        verb,
        request.key,
        flags.client_flags,
        flags.exptime or 0,
        request.value,
        flags.cas or 0,
        set_stale=flags.set_stale and verb == "cas",
    )
    if result is StoreResult.NO_MEMORY:
        # memcached refuses before reading the data, and drops the old value
        # whatever the mode.
        cache.delete_silently(request.key)
        return line(result.value)
    if item is not None:
        item.key_binary = flags.key_binary
    out = [_META_SET_CODES[result]]
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "O":
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(request.key, flags.key_binary))
        elif flag == "c":
            out.append(b" c%d" % (item.cas if item is not None else 0))
    return line(b"".join(out), flags.no_reply and result is StoreResult.STORED)


def md(cache: Cache, request: p.MetaDelete) -> bytes:
    """memcached's ``process_mdelete_command``."""
    flags = request.flags
    try:
        echoes = _echoes(flags, request.key, flags.key_binary)
    except _OpaqueTooLong:
        return line(_OPAQUE_TOO_LONG)
    item = cache.find(request.key)
    if item is None:
        cache.counters["delete_misses"] += 1
        return line(b"NF" + echoes)
    if flags.cas is not None and item.cas != flags.cas:
        cache.counters["delete_misses"] += 1
        return line(b"EX" + echoes)
    if flags.set_stale:
        if flags.exptime is not None:
            item.exptime = cache.realtime(flags.exptime)
        item.stale = True
        item.token_sent = False
        item.cas = cache.next_cas()
    else:
        cache.counters["delete_hits"] += 1
        cache.unlink(item)
    return line(b"HD" + echoes, flags.no_reply)


def ma(cache: Cache, request: p.MetaArithmetic) -> bytes:
    """memcached's ``process_marithmetic_command``."""
    flags = request.flags
    incr = flags.mode is None or flags.mode in b"I+"
    outcome, item = cache.arithmetic(request.key, incr, flags.delta, flags.cas or 0)
    created = False
    status = b""
    number = 0
    if outcome is ArithmeticResult.NON_NUMERIC or outcome is ArithmeticResult.NO_MEMORY:
        return line(outcome.value)
    if outcome is ArithmeticResult.NOT_FOUND:
        if flags.vivify_exptime is not None:
            number = flags.initial
            fresh = cache.new_item(request.key, b"%d" % number, 0, 0)
            if fresh is None:
                return line(b"SERVER_ERROR Out of memory allocating new item")
            fresh.key_binary = flags.key_binary
            cache.link(fresh)
            item, created = fresh, True
        else:
            cache.counters["incr_misses" if incr else "decr_misses"] += 1
            status = b"NF"
    elif outcome is ArithmeticResult.CAS_MISMATCH:
        status = b"EX"
    else:
        assert isinstance(outcome, int)
        number = outcome
    if item is None:
        try:
            return line(status + _echoes(flags, request.key, flags.key_binary))
        except _OpaqueTooLong:
            return line(_OPAQUE_TOO_LONG)
    text = b"%d" % number
    out = [b"VA %d" % len(text) if flags.value else b"HD"]
    for token in flags.tokens:
        flag = chr(token[0])
        if flag == "c":
            out.append(b" c%d" % item.cas)
        elif flag == "t":
            out.append(b" t" + _ttl(cache, item))
        elif flag == "T" and flags.exptime is not None:
            item.exptime = cache.realtime(flags.exptime)
        elif flag == "N" and created and flags.vivify_exptime is not None:
            item.exptime = cache.realtime(flags.vivify_exptime)
        elif flag == "O":
            if len(token) > p.MFLAG_MAX_OPAQUE_LENGTH:
                return line(_OPAQUE_TOO_LONG)
            out.append(b" " + token)
        elif flag == "k":
            out.append(_key_echo(request.key, flags.key_binary))
    if flags.value:
        out += (b"\r\n", text)
    return line(b"".join(out), flags.no_reply and not created)


def slab_class(size: int, item_size_max: int = 1024 * 1024) -> int:
    """The memcached slab class an item of ``size`` bytes would use (default
    growth factor 1.25, 48-byte minimum chunk, 1 MiB pages)."""
    page = max(1024 * 1024, item_size_max)
    chunk_max = page // 2
    chunk = 96
    klass = 0
    while True:
        klass += 1
        if chunk >= chunk_max / 1.25:
            return klass
        if chunk % 8:
            chunk += 8 - chunk % 8
        if size <= chunk:
            return klass
        chunk = int(chunk * 1.25)


def me(cache: Cache, request: p.MetaDebug) -> bytes:
    """memcached's ``me``: item internals."""
    cache.counters["cmd_meta"] += 1
    item = cache.find(request.key)
    if item is None:
        return line(b"EN")
    key = base64.b64encode(item.key) if item.key_binary else item.key
    now = cache.current_time
    expiry = (
        -1 if item.exptime == 0 else ((now - item.exptime + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    )
    return line(
        b"ME %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d"
        % (
            key,
            expiry,
            (now - item.time) & 0xFFFFFFFF,
            item.cas,
            b"yes" if item.fetched else b"no",
            slab_class(item.size),
            item.size,
        )
    )
