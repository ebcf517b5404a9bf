"""Type stub for the cffi extension built from _uring_build.py."""

from typing import Any

ffi: Any
lib: Any
