import os
import resource
import signal
import tempfile

import shardio
import shardio_disk


async def main(directory):
    path = os.path.join(directory, "limited")
    out = shardio_disk.FileOutputStream(
        await shardio_disk.open_dma(path, "w"), buffer_size=4096, write_behind=4
    )
    # No file may grow beyond 64 KiB: the 17th block's write fails, in the
    # background, while send_all is busy filling the next buffers.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    sent = 0
    try:
        while True:
            await out.send_all(bytes(4096))
            sent += 4096
    except OSError as exc:
        # Raised by whichever send_all came after the failure was known.
        print(f"send_all raised OSError {os.strerror(exc.errno)!r}")
        print("  for the file 'limited':", os.path.basename(exc.filename) == "limited")
        print("  the first 64 KiB had been taken:", sent >= 64 * 1024)
    try:
        await out.send_all(b"more")
    except shardio.BrokenResourceError as exc:
        print("then:", type(exc).__name__, "caused by", type(exc.__cause__).__name__)
    await out.aclose()  # the error was raised already: a quiet close
    print("file closed:", out.file.closed)


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory)
