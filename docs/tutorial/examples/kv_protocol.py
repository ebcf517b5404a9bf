"""A line-based key/value protocol, small enough to read in one go:

    SET <key> <value>\n   ->   OK\n
    GET <key>\n           ->   VALUE <value>\n   or   NOTFOUND\n

Keys and values are bytes without spaces or newlines. The server and the
client are written against the stream contract only, so they run unchanged
on a kernel socket (shardio_net) and on a native stack (shardio_net.native).
"""

from shardio_net import ReceiveBuffer


async def serve_kv(store, stream):
    """Answer one connection's requests; `store` is the server's dict."""
    buffer = ReceiveBuffer()
    while True:
        while (line := buffer.take_until(b"\n")) is not None:
            command, _, rest = bytes(line).partition(b" ")
            if command == b"SET":
                key, _, value = rest.partition(b" ")
                store[key] = value
                await stream.send_all(b"OK\n")
            elif command == b"GET" and rest in store:
                await stream.send_all(b"VALUE " + store[rest] + b"\n")
            elif command == b"GET":
                await stream.send_all(b"NOTFOUND\n")
            else:
                await stream.send_all(b"ERROR\n")
        if not await buffer.receive_from(stream):
            return  # the client closed its side


class KVClient:
    """One request at a time, over any stream."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = ReceiveBuffer()

    async def _reply(self):
        while (line := self.buffer.take_until(b"\n")) is None:
            if not await self.buffer.receive_from(self.stream):
                raise EOFError("the server closed the connection")
        return bytes(line)

    async def set(self, key, value):
        await self.stream.send_all(b"SET " + key + b" " + value + b"\n")
        reply = await self._reply()
        if reply != b"OK":
            raise RuntimeError(f"SET answered {reply!r}")

    async def get(self, key):
        await self.stream.send_all(b"GET " + key + b"\n")
        reply = await self._reply()
        return reply[6:] if reply.startswith(b"VALUE ") else None
