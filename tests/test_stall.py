"""The stall detector names the task that keeps a shard from scheduling."""

from __future__ import annotations

import logging
import time

import pytest

import shardio


def hog_the_shard(seconds: float) -> None:
    time.sleep(seconds)  # no checkpoint: the whole shard is frozen


def test_a_task_without_checkpoints_is_reported_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        await shardio.sleep(0.05)  # waiting is not a stall
        hog_the_shard(0.3)

    with caplog.at_level(logging.WARNING, logger="shardio.stall"):
        shardio.run(main, stall_threshold=0.1)
    stalls = [r for r in caplog.records if r.name == "shardio.stall"]
    assert len(stalls) == 1
    message = stalls[0].getMessage()
    assert "shard 0 stalled" in message
    assert "hog_the_shard" in message


def test_a_busy_but_cooperative_shard_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            await shardio.lowlevel.checkpoint()

    with caplog.at_level(logging.WARNING, logger="shardio.stall"):
        shardio.run(main, stall_threshold=0.05)
    assert not [r for r in caplog.records if r.name == "shardio.stall"]


def test_stall_threshold_must_be_positive() -> None:
    async def main() -> None:
        pass

    with pytest.raises(ValueError, match="stall_threshold"):
        shardio.run(main, stall_threshold=0)
