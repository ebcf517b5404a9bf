"""lowlevel.SyncCloseable: what a resource that closes at once gets from its
``close()`` -- ``aclose()``, ``with`` and ``async with`` -- for a user's class
and for the four channel ends shardio makes from it."""

from __future__ import annotations

from typing import Any

import pytest

import shardio
from shardio.lowlevel import SyncCloseable, currently_ki_protected


class Gate(SyncCloseable):
    """A user's resource: it records each close, and whether a second
    Ctrl-C arriving in it would have been held back."""

    def __init__(self) -> None:
        self.closes: list[bool] = []

    def close(self) -> None:
        self.closes.append(currently_ki_protected())


async def test_a_sync_closeable_gets_aclose_with_and_async_with_from_close() -> None:
    gate = Gate()
    with gate as entered:
        assert entered is gate
        assert gate.closes == []
    async with gate as entered:
        assert entered is gate
        assert len(gate.closes) == 1
    await gate.aclose()
    # aclose() is KI-protected, so close() under it is too (async with goes
    # through aclose); a plain ``with`` leaves the user's task as it is.
    assert gate.closes == [False, True, True]


async def test_aclose_closes_first_so_a_cancelled_aclose_still_closed() -> None:
    gate = Gate()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await gate.aclose()
        pytest.fail("aclose() is a checkpoint: it raises Cancelled in a cancelled scope")
    assert scope.cancelled_caught
    assert gate.closes == [True]


@pytest.mark.parametrize(
    "open_channel", [shardio.open_memory_channel, shardio.open_channel], ids=["memory", "shard"]
)
async def test_every_channel_end_closes_on_with_async_with_and_a_cancelled_aclose(
    open_channel: Any,
) -> None:
    send, receive = open_channel(1)
    with send.clone() as clone:
        clone.send_nowait("sent before the close")
    with pytest.raises(shardio.ClosedResourceError):
        clone.send_nowait("after")
    async with send.clone() as clone:
        pass
    with pytest.raises(shardio.ClosedResourceError):
        clone.send_nowait("after")
    with shardio.CancelScope() as scope:
        scope.cancel()
        await send.aclose()
    assert scope.cancelled_caught
    assert receive.receive_nowait() == "sent before the close"
    with pytest.raises(shardio.EndOfChannel):
        receive.receive_nowait()  # every send end is closed

    with receive.clone() as other:
        pass
    with pytest.raises(shardio.ClosedResourceError):
        other.receive_nowait()
    async with receive.clone() as other:
        pass
    with pytest.raises(shardio.ClosedResourceError):
        other.receive_nowait()
    with shardio.CancelScope() as scope:
        scope.cancel()
        await receive.aclose()
    assert scope.cancelled_caught
    with pytest.raises(shardio.ClosedResourceError):
        receive.receive_nowait()
    stats = receive.statistics()
    assert (stats.open_send_channels, stats.open_receive_channels) == (0, 0)
