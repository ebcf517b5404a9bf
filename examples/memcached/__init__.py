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
"""
