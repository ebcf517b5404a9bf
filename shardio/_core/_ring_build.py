"""cffi build script for the ring helpers (``shardio._core._ring_c``).

Run by setuptools at install time (``cffi_modules`` in setup.py).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "_ring.h").read_text())
ffibuilder.set_source(
    "shardio._core._ring_c",
    '#include "_ring.h"\n' + (HERE / "_ring.c").read_text(),
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
