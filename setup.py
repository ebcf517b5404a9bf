"""The C helpers are compiled by cffi at install time; pyproject.toml has the rest."""

from setuptools import setup

setup(
    cffi_modules=[
        "shardio/_core/_ring_build.py:ffibuilder",
        "shardio_disk/_uring_build.py:ffibuilder",
        "shardio_net/native/wire/_checksum_build.py:ffibuilder",
    ]
)
