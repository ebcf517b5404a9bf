import functools

import pytest

import shardio
from kv_protocol import KVClient, serve_kv
from shardio_net.native import TcpConfig, simulated_pair

NETWORKS = {
    "clean": {},
    "lossy": {"loss": 0.1},
    "awful": {
        "delay": 0.005,
        "jitter": 0.005,
        "rate": 500_000,
        "loss": 0.05,
        "duplicate": 0.02,
        "reorder": 0.1,
        "corrupt": 0.02,
    },
}


async def kv_pair(nursery, network, seed, config=None):
    """A server on one stack, and a client connected to it from the other."""
    a, b = simulated_pair(seed=seed, tcp=config, **network)
    await nursery.start(b.serve_tcp, functools.partial(serve_kv, {}), 7000)
    client = KVClient(await a.open_tcp_stream("10.0.0.2", 7000))
    return a, b, client


@pytest.mark.shardio
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("network", NETWORKS)
async def test_every_value_comes_back_intact(autojump_clock, network, seed):
    async with shardio.open_nursery() as nursery:
        _, _, client = await kv_pair(nursery, NETWORKS[network], seed)
        values = {b"key%d" % i: b"value%d-" % i * (i * 50) for i in range(40)}
        for key, value in values.items():
            await client.set(key, value)
        for key, value in values.items():
            assert await client.get(key) == value
        assert await client.get(b"never-set") is None
        nursery.cancel_scope.cancel()


@pytest.mark.shardio
async def test_a_client_whose_server_vanishes_fails_instead_of_hanging(autojump_clock):
    async with shardio.open_nursery() as nursery:
        a, b, client = await kv_pair(nursery, {}, seed=0, config=TcpConfig(retries=5))
        await client.set(b"k", b"v")
        a.device.loss = b.device.loss = 1.0
        # fail_after counts simulated seconds: a bound on the test, not a timing.
        with shardio.fail_after(60), pytest.raises(shardio.BrokenResourceError) as info:
            await client.get(b"k")
        assert isinstance(info.value.__cause__, TimeoutError)
        nursery.cancel_scope.cancel()
