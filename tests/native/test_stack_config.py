"""A stack's TCP configuration against its device."""

from __future__ import annotations

import shardio
from shardio.testing import MockClock
from shardio_net.native import TcpConfig, simulated_pair


async def test_a_tcp_config_sized_for_a_wider_mtu_follows_the_link(
    autojump_clock: MockClock,
) -> None:
    # TcpConfig's mtu defaults to 1500: given for another setting, it must
    # not make segments a 576-byte link cannot carry (they would be dropped
    # for good, DF being set, and the transfer would never end).
    a, b = simulated_pair(mtu=576, tcp=TcpConfig(delayed_ack=0.01))
    [listener] = await b.open_tcp_listeners(80)
    client = await a.open_tcp_stream("10.0.0.2", 80)
    server = await listener.accept()
    with shardio.fail_after(60):  # simulated seconds: a bound, not a timing
        await client.send_all(b"x" * 5000)
        received = b""
        while len(received) < 5000:
            received += await server.receive_some()
    assert received == b"x" * 5000
    assert client.statistics().snd_mss <= 576 - 40
    assert a.statistics().interface.dropped == {}
