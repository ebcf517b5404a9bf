"""Tests of shardio_disk, each run on both backends (see conftest.py)."""
