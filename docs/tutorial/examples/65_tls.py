import functools
import ssl

import trustme

import shardio
import shardio_net

# A throwaway certificate authority and a certificate it signed for
# "localhost": real TLS, verified end to end, with no real certificate.
ca = trustme.CA()
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("localhost").configure_cert(server_context)
client_context = ssl.create_default_context()
ca.configure_trust(client_context)


async def greet(refused, stream):
    # `stream` is a TLSStream: the handshake happens on its first use.
    try:
        name = await stream.receive_some()
    except shardio.BrokenResourceError as error:
        await refused.send(error.__cause__.reason)  # the ssl.SSLError's reason
        return
    await stream.send_all(b"hello, " + name + b", over " + stream.version().encode())


async def main():
    refused_send, refused_receive = shardio.open_memory_channel(1)
    async with shardio.open_nursery() as nursery:
        listeners = await shardio_net.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        tls_listeners = [shardio_net.TLSListener(lst, server_context) for lst in listeners]
        handler = functools.partial(greet, refused_send)
        nursery.start_soon(shardio_net.serve_listeners, handler, tls_listeners)

        tcp = await shardio_net.open_tcp_stream("127.0.0.1", port)
        stream = shardio_net.TLSStream(tcp, client_context, server_hostname="localhost")
        async with stream:
            await stream.send_all(b"client")
            print((await stream.receive_some()).decode())

        # A client that does not trust our CA stops at the handshake.
        tcp = await shardio_net.open_tcp_stream("127.0.0.1", port)
        untrusting = shardio_net.TLSStream(
            tcp, ssl.create_default_context(), server_hostname="localhost"
        )
        try:
            await untrusting.do_handshake()
        except shardio.BrokenResourceError as error:
            print(f"untrusting client: {type(error.__cause__).__name__}")
        await untrusting.aclose()
        print(f"server: the client's alert said {await refused_receive.receive()}")
        nursery.cancel_scope.cancel()


shardio.run(main)
