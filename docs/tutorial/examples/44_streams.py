import os
import tempfile

import shardio
import shardio_disk

RECORD = 100  # bytes per record: not a multiple of any alignment


def record(number):
    return f"record {number:>8}".encode().ljust(RECORD, b".")


async def main(directory):
    path = os.path.join(directory, "records")

    out = shardio_disk.FileOutputStream(
        await shardio_disk.open_dma(path, "w"), buffer_size=64 * 1024, write_behind=4
    )
    async with out:  # closing flushes, truncates and syncs
        await out.send_all(b"".join(record(n) for n in range(10_000)))
        await out.send_all(record(10_000))
    stats = out.statistics()
    print(
        f"wrote {stats.bytes} bytes in {stats.operations} writes,"
        f" at most {stats.peak_in_flight} in flight"
    )
    async with await shardio_disk.open_dma(path, "r") as f:
        print("file size:", await f.size(), "(not rounded up to a block)")

    stream = shardio_disk.FileInputStream(
        await shardio_disk.open_dma(path, "r"), buffer_size=64 * 1024, read_ahead=4
    )
    async with stream:
        first = await stream.read_exactly(RECORD)
        count, last = 1, first
        while piece := await stream.read_exactly(RECORD):
            count, last = count + 1, piece
        stats = stream.statistics()
    print(f"read {count} records: first {first[:15]}, last {last[:15]}")
    print(f"{stats.operations} reads, at most {stats.peak_in_flight} in flight")

    # A range that starts and ends anywhere.
    stream = shardio_disk.FileInputStream(
        await shardio_disk.open_dma(path, "r"), offset=RECORD * 5000 + 7, length=8
    )
    async with stream:
        print("8 bytes from record 5000, offset 7:", await stream.read_exactly(100))


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory)
