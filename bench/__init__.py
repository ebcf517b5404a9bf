"""shardio's benchmarks against its peers: ``python -m bench`` (see README.md)."""
