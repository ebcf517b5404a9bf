"""What the server is: its settings, as memcached's command line sets them,
and the memcached version it answers as. Every other part reads them."""

from __future__ import annotations

import attrs

__all__ = ["ENGINE_VERSION", "Settings"]

ENGINE_VERSION = b"1.6.18"
"""The memcached version this server answers ``version`` with: the one whose
behaviour it reproduces (clients switch features on the version)."""


@attrs.frozen
class Settings:
    """Server-wide settings, as memcached's command line sets them."""

    memory_limit: int = 64 * 1024 * 1024
    item_size_max: int = 1024 * 1024
    max_connections: int = 1024
    port: int = 11211
    interface: str = ""
    evictions: bool = True
    shards: int = 1
    data_dir: str | None = None
    """Where the shards keep their logs (``--data-dir``); None: no persistence."""
    compact_ratio: float = 4.0
    """Compact a shard's log once it is this many times its live data..."""
    compact_min_bytes: int = 16 << 20
    """... and larger than this."""
    salvage_damaged_logs: bool = False
    """Start even if a log is damaged in a way no crash explains, keeping
    every valid record (``--salvage-damaged-logs``; see :mod:`.log`)."""
