import os
import tempfile

import shardio
import shardio_disk


async def main(directory):
    path = os.path.join(directory, "notes.txt")

    # Text mode, as open(): newline="" writes line endings as they are.
    async with await shardio_disk.open_file(path, "w", encoding="utf-8", newline="") as f:
        await f.write("first line\n")
        await f.writelines(["second, from Windows\r\n", "third, from an old Mac\r", "last"])
        print("wrote", await f.tell(), "bytes")

    # Reading with universal newlines (newline=None): every ending reads as "\n".
    async with await shardio_disk.open_file(path, encoding="utf-8") as f:
        async for line in f:
            print(repr(line))
        print("line endings seen:", f.newlines)

        await f.seek(0)
        await f.readline()
        bookmark = await f.tell()  # an opaque cookie, for seek()
        print("after one line:", repr(await f.read(6)))
        await f.seek(bookmark)
        print("back at the bookmark:", repr(await f.readline()))

    # Binary mode, and appending.
    async with await shardio_disk.open_file(path, "ab") as f:
        print("appending at", await f.tell(), "->", await f.write(b"!\n"), "bytes")
    async with await shardio_disk.open_file(path, "rb") as f:
        print("the end of the file:", (await f.read())[-8:])


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    shardio.run(main, directory)
