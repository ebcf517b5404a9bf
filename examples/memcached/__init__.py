"""A memcached-compatible server on shardio: keys sharded over CPU cores.

``python -m examples.memcached --smp N -p PORT`` runs it (see ``__main__``).
The parts, each usable and tested alone:

* :mod:`.protocol` -- the ASCII protocol (classic and meta commands) as a
  sans-io parser with memcached 1.6's exact replies and limits;
* :mod:`.store` -- one shard's cache: expiry, flush, CAS, incr/decr, LRU;
* :mod:`.sharding` -- which shard owns a key;
* :mod:`.engine` -- requests to per-shard jobs and back to reply bytes, and
  :class:`.engine.LocalEngine`, the whole server in one process without I/O;
* :mod:`.server` -- the network server: connections on every shard, one
  batched cross-shard call per owner shard per pipeline.

Persistence (``--data-dir``), in the same style -- the format and the
bookkeeping without I/O, the I/O alone:

* :mod:`.records` -- the log's framed, checksummed records, and a reader
  that finds where a crash cut the log short;
* :mod:`.journal` -- a shard's cache changes as records;
* :mod:`.recovery` -- records back into a cache;
* :mod:`.log` -- a shard's log file: direct writes with group commit,
  recovery, compaction;
* :mod:`.datadir` -- the data directory: manifest, lock, resharding.
"""
