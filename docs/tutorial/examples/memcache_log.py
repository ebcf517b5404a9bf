"""A durable log for one shard: records framed with their length and CRC,
written with direct I/O by one writer task that commits many at a time."""

import os
import struct
import zlib

import shardio
import shardio_disk

FRAME = struct.Struct("<II")  # the body's length, and its CRC-32


def frame(body):
    return FRAME.pack(len(body), zlib.crc32(body)) + body


def records(data):
    """The bodies of the valid records at the start of ``data``, and where they end."""
    bodies, position = [], 0
    while position + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, position)
        body = data[position + FRAME.size : position + FRAME.size + length]
        if length == 0 or len(body) < length or zlib.crc32(body) != crc:
            break  # zero padding, or a record that a crash cut short
        bodies.append(body)
        position += FRAME.size + length
    return bodies, position


class Log:
    def __init__(self, file, end, block):
        self.file = file  # a DmaFile
        self.end = end  # where the records end in the file
        self.block = block  # the file's bytes from the last block boundary to ``end``
        self.pending = bytearray()  # records appended, not written yet
        self.appended = self.durable = 0  # bytes of records appended; of those on disk
        self.waiters = []  # (bytes that must be on disk, Event)
        self.wakeup = shardio.Event()
        self.commits = 0

    @classmethod
    async def open(cls, path):
        """Open (or create) the log at ``path``; return it and its records."""
        file = await shardio_disk.open_dma(path, "r+" if os.path.exists(path) else "w+")
        data = b""
        while True:  # read it all, in large direct reads
            chunk = await file.read_at(len(data), 1 << 20)
            data += chunk
            if len(chunk) < 1 << 20:
                break
        bodies, end = records(data)
        await file.truncate(end)  # cut off a torn record, and the padding
        await file.fdatasync()
        block = data[end - end % file.alignment.write : end]
        return cls(file, end, block), bodies

    def append(self, body):
        """Add a record; return what :meth:`wait_durable` must wait for."""
        self.pending += frame(body)
        self.appended += FRAME.size + len(body)
        self.wakeup.set()
        return self.appended

    async def wait_durable(self, appended):
        """Return once the records up to ``appended`` are on disk."""
        if self.durable < appended:
            done = shardio.Event()
            self.waiters.append((appended, done))
            await done.wait()

    async def run(self):
        """The writer task: everything appended meanwhile, in one write and one sync."""
        while True:
            if not self.pending:
                self.wakeup = shardio.Event()
                await self.wakeup.wait()
                continue
            data, self.pending = bytes(self.pending), bytearray()
            # Direct I/O writes whole aligned blocks: rewrite the last partial
            # block, then the new records, then zeros up to a block boundary.
            align = self.file.alignment.write
            used = len(self.block) + len(data)
            size = -(-used // align) * align
            buffer = shardio_disk.aligned_buffer(size, self.file.alignment.memory)
            buffer[:used] = self.block + data
            await self.file.write_at(self.end - len(self.block), buffer)
            await self.file.fdatasync()
            self.end += len(data)
            self.block = bytes(buffer[used - used % align : used])
            self.durable += len(data)
            self.commits += 1
            for waiter in [w for w in self.waiters if w[0] <= self.durable]:
                self.waiters.remove(waiter)
                waiter[1].set()
