"""A memcached-compatible server, sharded over CPU cores.

Run it from the repository root::

    .venv/bin/python -m examples.memcached --smp 2 -p 11211 -l 127.0.0.1 -m 64

and use any memcached client (ASCII protocol). memcached's flags mean what
they mean to memcached: ``-p`` port (0: the kernel picks one), ``-l`` the
address to listen on (default: every address), ``-m`` megabytes of item
memory (shared out equally over the shards), ``-c`` maximum simultaneous
connections, ``-I`` maximum item size (``1m``, ``512k``, or bytes), ``-M``
return errors instead of evicting. ``-t`` (threads) is accepted and ignored:
the shard count (``--smp``) plays its part. The first line printed says
where the server listens; Ctrl-C stops it.

``--data-dir DIR`` makes the data durable: each shard logs its changes to
``DIR`` with direct I/O and acknowledges a change only once it is on disk,
and a restarted server recovers everything it acknowledged (with another
``--smp``, it reshards the data). The directory must be on a filesystem
that supports O_DIRECT (not tmpfs before Linux 6.6). ``--compact-ratio``
and ``--compact-min`` say when a log is rewritten without its dead records.
A log damaged in a way no crash explains (valid records after unreadable
bytes) stops the server at start with a message naming the damaged ranges;
``--salvage-damaged-logs`` starts it anyway, with every valid record and
the damaged file kept aside (see ``log.py``). ``--idle-poll-us`` is
Seastar's idle poll time: how long a shard with nothing to do keeps polling
before it sleeps (less CPU for more latency).
"""

from __future__ import annotations

import argparse
import sys

import shardio
import shardio_net.native

from .datadir import DataDirectoryError
from .server import serve
from .settings import Settings

MAX_ITEM_SIZE = 1024 * 1024 * 1024


def byte_size(text: str) -> int:
    """Bytes, or a number with a k, m or g suffix."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale != 1 else text
    try:
        size = int(digits) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return size


def item_size(text: str) -> int:
    """memcached's ``-I`` argument: bytes, or a number with a k or m suffix."""
    size = byte_size(text)
    if not 1024 <= size <= MAX_ITEM_SIZE:
        raise argparse.ArgumentTypeError("item size must be between 1k and 1024m")
    return size


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with memcached's option letters."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.memcached", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smp", type=int, default=None, help="shards (default: one per CPU)")
    parser.add_argument("-p", "--port", type=int, default=11211, help="TCP port (default 11211)")
    parser.add_argument("-l", "--listen", default=None, help="address to listen on")
    parser.add_argument("-m", "--memory-limit", type=int, default=64, help="item memory in MB")
    parser.add_argument("-c", "--conn-limit", type=int, default=1024, help="max connections")
    parser.add_argument(
        "-I", "--max-item-size", type=item_size, default=1024 * 1024, help="max item size"
    )
    parser.add_argument(
        "-M", "--disable-evictions", action="store_true", help="refuse to store when full"
    )
    parser.add_argument("-t", "--threads", type=int, default=None, help="ignored: see --smp")
    parser.add_argument(
        "--data-dir", default=None, help="keep the data durable in this directory (O_DIRECT)"
    )
    parser.add_argument(
        "--salvage-damaged-logs",
        action="store_true",
        help="start even if a shard's log is damaged (not just torn by a crash): keep every "
        "valid record, and the damaged file aside",
    )
    parser.add_argument(
        "--idle-poll-us",
        type=float,
        default=None,
        help="how long an idle shard polls before it sleeps (shardio's default: 200)",
    )
    parser.add_argument(
        "--compact-ratio",
        type=float,
        default=4.0,
        help="rewrite a shard's log once it is this many times its live data (default 4)",
    )
    parser.add_argument(
        "--compact-min",
        type=byte_size,
        default=16 << 20,
        help="... and larger than this (default 16m)",
    )
    shardio_net.native.add_stack_arguments(parser)
    return parser.parse_args(argv)


async def main(arguments: argparse.Namespace) -> None:
    """Serve until interrupted, on every shard."""
    settings = Settings(
        memory_limit=arguments.memory_limit * 1024 * 1024,
        item_size_max=arguments.max_item_size,
        max_connections=arguments.conn_limit,
        port=arguments.port,
        interface=arguments.listen or "",
        evictions=not arguments.disable_evictions,
        shards=shardio.shard_count(),
        data_dir=arguments.data_dir,
        compact_ratio=arguments.compact_ratio,
        compact_min_bytes=arguments.compact_min,
        salvage_damaged_logs=arguments.salvage_damaged_logs,
    )
    stack = await shardio_net.native.start_stack(arguments)
    async with shardio.open_nursery() as nursery:
        addresses = await nursery.start(serve, settings, arguments.listen)
        where = ", ".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in addresses
        )
        print(
            f"memcached on {settings.shards} shard(s), {stack}, listening on {where}",
            flush=True,
        )


def run(argv: list[str] | None = None) -> None:
    """Entry point: parse the command line and serve."""
    arguments = parse_arguments(argv)
    if arguments.threads is not None:
        print(
            "note: -t is ignored; each shard is one thread on its own core (see --smp)",
            file=sys.stderr,
            flush=True,
        )
    try:
        try:
            options = {}
            if arguments.idle_poll_us is not None:
                options["idle_poll_us"] = arguments.idle_poll_us
            shardio.run(main, arguments, shards=arguments.smp, **options)
        except* (DataDirectoryError, OSError) as group:
            for error in _leaves(group):
                print(f"memcached: {error}", file=sys.stderr, flush=True)
            sys.exit(1)
    except KeyboardInterrupt:
        pass


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and its nested groups."""
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found += _leaves(error)
        else:
            found.append(error)
    return found


if __name__ == "__main__":
    run()
