import functools

import shardio
import shardio_net


async def echo(stream):
    # The handler owns one connection; serve_tcp closes it when we return.
    while data := await stream.receive_some():
        await stream.send_all(data)
    print("server: the client closed its side; closing ours")


async def client(port):
    stream = await shardio_net.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"hello, ")
        await stream.send_all(b"world")
        await stream.send_eof()  # half-close: we send no more, but still receive
        received = b""
        while data := await stream.receive_some():
            received += data
    print(f"client: got back {received!r}")


async def main():
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, echo, 0, host="127.0.0.1")
        [(host, port)] = await nursery.start(serve)
        print(f"listening on {host}, port picked by the kernel")
        await client(port)
        nursery.cancel_scope.cancel()  # stop serving
    print("server stopped")


shardio.run(main)
