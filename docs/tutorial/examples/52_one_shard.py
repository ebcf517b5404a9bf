import functools

import shardio
import shardio_net
from memcache_protocol import Parser, value_reply
from memcache_store import Store


def answer(store, request):
    """The reply to one request (the store does the work)."""
    kind = request[0]
    if kind == "get":
        found = [(key, store.get(key)) for key in request[1]]
        blocks = [value_reply(key, *item) for key, item in found if item is not None]
        return b"".join(blocks) + b"END\r\n"
    if kind == "set":
        store.set(*request[1:])
        return b"STORED\r\n"
    if kind == "delete":
        return b"DELETED\r\n" if store.delete(request[1]) else b"NOT_FOUND\r\n"
    if kind == "stats":
        figures = store.stats().items()
        return b"".join(b"STAT %s %d\r\n" % (n.encode(), v) for n, v in figures) + b"END\r\n"
    return request[1] + b"\r\n"  # an error line


async def handle(store, stream):
    """One client connection, until the client closes it."""
    parser = Parser()
    while data := await stream.receive_some():
        replies = [answer(store, request) for request in parser.feed(data)]
        if replies:  # everything that arrived together is answered with one send
            await stream.send_all(b"".join(replies))


async def converse(port, *chunks):
    """A client: send each chunk, print what comes back."""
    async with await shardio_net.open_tcp_stream("127.0.0.1", port) as stream:
        for chunk in chunks:
            await stream.send_all(chunk)
            print(f"-> {chunk!r}")
            print(f"<- {await stream.receive_some()!r}")


async def main():
    store = Store()
    async with shardio.open_nursery() as nursery:
        serve = functools.partial(shardio_net.serve_tcp, functools.partial(handle, store), 0)
        addresses = await nursery.start(functools.partial(serve, host="127.0.0.1"))
        port = addresses[0][1]
        await converse(port, b"set a 0 0 5\r\nhello\r\nset b 0 0 5\r\nworld\r\n", b"get a b c\r\n")
        await converse(port, b"delete a\r\nget a\r\nstats\r\n")
        nursery.cancel_scope.cancel()  # stop the server


shardio.run(main)
