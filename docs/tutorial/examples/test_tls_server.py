import functools
import ssl

import pytest
import trustme

import shardio
import shardio_net


@pytest.fixture(scope="session")
def ca():
    return trustme.CA()


@pytest.fixture
def server_pem(ca, tmp_path):
    path = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(path)
    return str(path)


@functools.cache
def server_context(pem):
    # Built on each shard from the file: an SSLContext cannot travel between shards.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    return context


async def tls_echo(pem, tcp_stream):
    context = server_context(pem)
    async with shardio_net.TLSStream(tcp_stream, context, server_side=True) as stream:
        while data := await stream.receive_some():
            await stream.send_all(b"%d:%b" % (shardio.current_shard(), data))


@pytest.mark.shardio(shards=2)
async def test_tls_echo_on_every_shard(ca, server_pem):
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    handler = functools.partial(tls_echo, server_pem)
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(
            shardio_net.serve_tcp,
            handler,
            0,
            host="127.0.0.1",
            shards="all",
            balance="least-connections",  # the connections take turns: shard 0, shard 1
        )
        [(_, port)] = await nursery.start(serve)
        replies = []
        for message in (b"first", b"second"):
            tcp = await shardio_net.open_tcp_stream("127.0.0.1", port)
            stream = shardio_net.TLSStream(tcp, client_context, server_hostname="localhost")
            async with stream:
                await stream.send_all(message)
                replies.append(await stream.receive_some())
        assert replies == [b"0:first", b"1:second"]
        nursery.cancel_scope.cancel()
