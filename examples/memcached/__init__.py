"""A memcached-compatible server on shardio: keys sharded over CPU cores.

``python -m examples.memcached --smp N -p PORT`` runs it (see ``__main__``).
The parts, each usable and tested alone:

* :mod:`.settings` -- the server's settings, as memcached's flags set them;
* :mod:`.protocol` -- the ASCII protocol (classic and meta commands) as a
  sans-io parser with memcached 1.6's exact limits and error replies;
* :mod:`.store` -- one shard's cache: expiry, flush, CAS, incr/decr, LRU;
* :mod:`.commands`, :mod:`.meta` -- the classic and the meta commands on
  one shard's cache, and the bytes of their replies;
* :mod:`.stats` -- ``stats`` and its subcommands from every shard's figures;
* :mod:`.sharding` -- which shard owns a key;
* :mod:`.jobs` -- what a shard runs for a pipeline, on its
  :class:`.jobs.Partition` (its cache, its counters);
* :mod:`.engine` -- routing: a pipeline to jobs per owner shard, and their
  results back to replies in request order; :class:`.engine.LocalEngine`,
  the whole server in one process without I/O;
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
