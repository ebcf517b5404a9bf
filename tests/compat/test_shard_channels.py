"""Cross-shard channels used within one shard behave exactly as Trio's memory
channels: every memory-channel scenario, with ``open_channel`` in place of
``open_memory_channel``, must give Trio's trace."""

from __future__ import annotations

import types

import pytest

import shardio

from . import test_channels
from ._harness import _diff, run_scenario, trio_traces

# shardio, except that open_memory_channel makes cross-shard channels.
WITH_SHARD_CHANNELS = types.SimpleNamespace(
    **{name: getattr(shardio, name) for name in dir(shardio) if not name.startswith("__")}
)
WITH_SHARD_CHANNELS.open_memory_channel = shardio.open_channel

SCENARIOS = test_channels.SCENARIOS._all


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_shard_channel_on_one_shard_matches_trio_memory_channel(scenario: object) -> None:
    reference = trio_traces(scenario)[0]  # type: ignore[arg-type]
    observed = run_scenario(WITH_SHARD_CHANNELS, scenario)  # type: ignore[arg-type]
    if observed.events != reference:
        pytest.fail(
            "open_channel's trace differs from Trio's memory channel\n"
            + _diff("trio", reference, "shardio.open_channel", observed.events),
            pytrace=False,
        )
