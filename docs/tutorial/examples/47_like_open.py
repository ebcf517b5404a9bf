import os
import tempfile

import shardio
import shardio_disk

TEXT = "naïve café\r\nline two\rline three\n" * 500


def with_open(path):
    """Some calls on a file from open()."""
    results = []
    with open(path, "r+", encoding="utf-8") as f:
        results.append(f.read(7))
        results.append(f.readline())
        cookie = f.tell()
        results.append(cookie)
        results.append(f.readlines(40))
        f.seek(cookie)
        results.append(f.read(12))
        f.seek(0, 2)
        results.append(f.write("the end\n"))
        results.append(f.tell())
    return results


async def with_open_file(path):
    """The same calls on a file from open_file()."""
    results = []
    async with await shardio_disk.open_file(path, "r+", encoding="utf-8") as f:
        results.append(await f.read(7))
        results.append(await f.readline())
        cookie = await f.tell()
        results.append(cookie)
        results.append(await f.readlines(40))
        await f.seek(cookie)
        results.append(await f.read(12))
        await f.seek(0, 2)
        results.append(await f.write("the end\n"))
        results.append(await f.tell())
    return results


with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
    a, b = os.path.join(directory, "a"), os.path.join(directory, "b")
    for path in (a, b):
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(TEXT)
    expected = with_open(a)
    got = shardio.run(with_open_file, b)
    for want, have in zip(expected, got, strict=True):
        print("same" if want == have else "DIFFERENT", repr(have)[:60])
    with open(a, "rb") as fa, open(b, "rb") as fb:
        print("same file contents:", fa.read() == fb.read())
