import functools

import shardio
import shardio_net

MiB = 1 << 20


async def sink(stream):
    """Count what arrives, reading into one buffer that is reused every time."""
    buffer = bytearray(65536)
    total = ys = 0
    first = None
    while count := await stream.receive_into(buffer):  # the kernel copies into `buffer`
        first = first or bytes(buffer[:5])
        total += count
        ys += buffer.count(b"y", 0, count)
    await stream.send_all(b"%d bytes, starting %b; %d of them y" % (total, first, ys))


async def main():
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, sink, 0, host="127.0.0.1")
        [(_, port)] = await nursery.start(serve)
        stream = await shardio_net.open_tcp_stream("127.0.0.1", port)

        # A vectored send: a header and two slices of a body, in one sendmsg
        # call, never joined into one bytes object.
        body = bytearray(b"x" * 4 * MiB)
        header = b"HEAD:"
        await stream.send_all([header, memoryview(body)[:MiB], memoryview(body)[MiB:]])

        # send_all of 64 KiB or more uses MSG_ZEROCOPY: the kernel sends from
        # `body` itself, and send_all returns only once it is done with it,
        # so the buffer may be reused as soon as send_all returns.
        body[:] = b"y" * len(body)
        stats = stream.statistics()
        print("sent with MSG_ZEROCOPY:", stats.zerocopy_sends > 0)
        print("all completed when send_all returned:", stats.zerocopy_completed == stats.zerocopy_sends)
        # Over loopback the kernel copies after all, and says so; the stream
        # then copies itself from then on, as the kernel's documentation advises.
        print("copied by the kernel:", stats.zerocopy_copied > 0)
        print("zero-copy still in use on this stream:", stats.zerocopy_active)

        await stream.send_eof()
        print("server:", (await stream.receive_some()).decode())
        await stream.aclose()
        nursery.cancel_scope.cancel()


shardio.run(main)
