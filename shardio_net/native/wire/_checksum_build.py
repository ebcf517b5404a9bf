"""cffi build script for the Internet checksum helper
(``shardio_net.native.wire._checksum_c``).

Run by setuptools at install time (``cffi_modules`` in setup.py); run it by
hand (``python shardio_net/native/wire/_checksum_build.py``) to rebuild it in
place.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "_checksum.h").read_text())
ffibuilder.set_source(
    "shardio_net.native.wire._checksum_c",
    '#include <stddef.h>\n#include <stdint.h>\n#include "_checksum.h"\n',
    sources=[str(HERE / "_checksum.c")],
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
