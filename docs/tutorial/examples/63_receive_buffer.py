import functools

import shardio
import shardio_net
from shardio_net import ReceiveBuffer


async def read_messages(done, stream):
    """A length-prefixed protocol: b"<length>\\r\\n<payload>", again and again."""
    buffer = ReceiveBuffer()
    kept = None
    while True:
        # Parse every complete message the buffer holds...
        while True:
            if (length := buffer.find(b"\r\n")) < 0:
                break  # the length line is not complete yet
            size = int(buffer.peek(length))
            if len(buffer) < length + 2 + size:
                break  # the payload is not complete yet
            buffer.skip(length + 2)
            payload = buffer.take(size)  # a memoryview into the buffer: no copy
            print(f"message of {size} bytes: {bytes(payload)!r}")
            if kept is None:
                kept = payload
        # ...then receive more, straight into the buffer's free space.
        if not await buffer.receive_from(stream):
            break
    try:
        bytes(kept)
    except ValueError as error:
        print(f"a view kept past the next receive: ValueError: {error}")
    done.set()


async def main():
    async with shardio.open_nursery() as nursery:
        done = shardio.Event()
        handler = functools.partial(read_messages, done)
        serve = functools.partial(shardio_net.serve_tcp, handler, 0, host="127.0.0.1")
        [(_, port)] = await nursery.start(serve)
        async with await shardio_net.open_tcp_stream("127.0.0.1", port) as stream:
            for byte in b"5\r\nhello":  # one message, a byte at a time
                await stream.send_all(bytes([byte]))
                await shardio.sleep(0.001)
            await stream.send_all(b"3\r\none3\r\ntwo5\r\nthree0\r\n")  # four at once
        await done.wait()
        nursery.cancel_scope.cancel()


shardio.run(main)
