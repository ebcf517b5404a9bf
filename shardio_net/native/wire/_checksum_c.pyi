"""Type stub for the cffi extension built from _checksum_build.py."""

from typing import Any

ffi: Any
lib: Any
