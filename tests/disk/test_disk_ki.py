"""A second Ctrl-C never lands inside the disk backends' own bookkeeping.

An interrupt between an io_uring entry written and its record kept would
leave the kernel writing into memory nobody holds; the backends' entry
points are marked with ``enable_ki_protection``. The test asks, on every
line they run during real I/O, what the SIGINT handler would ask.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import shardio_disk
from shardio._core._ki import ki_protection_enabled
from shardio_disk._threads import ThreadBackend
from shardio_disk._uring import Uring


async def test_a_second_ctrl_c_never_lands_inside_a_disk_backends_bookkeeping(
    tmp_path: Path,
) -> None:
    methods = [Uring.queue, Uring.perform, Uring.start, Uring.cancel]
    methods += [ThreadBackend.run, ThreadBackend.start_io]
    watched = {method.__code__ for method in methods}
    verdicts: list[bool] = []

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            verdicts.append(ki_protection_enabled(frame))
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return on_line if frame.f_code in watched else None

    sys.settrace(on_call)
    try:
        async with await shardio_disk.open_dma(tmp_path / "f", "w+") as file:
            buffer = shardio_disk.aligned_buffer(4096)
            await file.write_at(0, buffer)
            await file.read_into(0, buffer)
        stream = shardio_disk.FileOutputStream(await shardio_disk.open_dma(tmp_path / "g", "w"))
        await stream.send_all(b"x" * 10000)
        await stream.aclose()
    finally:
        sys.settrace(None)
    assert verdicts
    assert all(verdicts)
