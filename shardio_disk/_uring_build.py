"""cffi build script for the io_uring driver and the DMA buffer arena
(``shardio_disk._uring_c``).

Run by setuptools at install time (``cffi_modules`` in setup.py).
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "_uring.h").read_text())
ffibuilder.set_source(
    "shardio_disk._uring_c",
    '#include <stddef.h>\n#include <stdint.h>\n#include "_uring.h"\n',
    sources=[str(HERE / "_uring.c"), str(HERE / "_arena.c")],
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
