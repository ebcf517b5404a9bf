import functools
import zlib

import shardio
import shardio_net
from memcache_protocol import Parser, value_reply
from memcache_store import Store


def owner(key):
    """The shard that owns ``key``: the same answer on every shard."""
    return zlib.crc32(key) % shardio.shard_count()


def run_parts(store, parts):
    """On the owner shard: one batch's parts for its keys, in order."""
    replies = []
    for kind, key, *rest in parts:
        if kind == "get":
            item = store.get(key)
            replies.append(b"" if item is None else value_reply(key, *item))
        elif kind == "set":
            store.set(key, *rest)
            replies.append(b"STORED\r\n")
        else:
            replies.append(b"DELETED\r\n" if store.delete(key) else b"NOT_FOUND\r\n")
    return replies


def add_figures(total, figures):
    return {name: total.get(name, 0) + value for name, value in figures.items()}


async def handle(stores, stream):
    parser = Parser()
    while data := await stream.receive_some():
        requests = parser.feed(data)
        # Plan: every part of every request goes to its owner's list, and
        # each request remembers where its parts are: (shard, index).
        lists, places = {}, []
        for request in requests:
            if request[0] == "get":  # a multi-get is split by key
                parts = [("get", key) for key in request[1]]
            else:
                parts = [request] if request[0] in ("set", "delete") else []
            place = []
            for part in parts:
                shard = owner(part[1])
                lists.setdefault(shard, []).append(part)
                place.append((shard, len(lists[shard]) - 1))
            places.append(place)
        # Execute: one call per owner shard, all owners at once.
        results = {}

        async def run_on_owner(shard):
            results[shard] = await stores.invoke_on(shard, run_parts, lists[shard])

        async with shardio.open_nursery() as nursery:
            for shard in lists:
                nursery.start_soon(run_on_owner, shard)
        # Assemble the replies in request order.
        replies = []
        for request, place in zip(requests, places, strict=True):
            if request[0] == "get":
                replies.append(b"".join(results[s][i] for s, i in place) + b"END\r\n")
            elif place:
                shard, index = place[0]
                replies.append(results[shard][index])
            elif request[0] == "stats":  # every shard's figures, added up
                figures = await stores.map_reduce(Store.stats, add_figures, {})
                lines = [b"STAT %s %d\r\n" % (n.encode(), v) for n, v in figures.items()]
                replies.append(b"".join(lines) + b"END\r\n")
            else:
                replies.append(request[1] + b"\r\n")
        await stream.send_all(b"".join(replies))


async def main():
    async with shardio.sharded(Store) as stores:  # one Store per shard
        async with shardio.open_nursery() as nursery:
            handler = functools.partial(handle, stores)
            serve = functools.partial(shardio_net.serve_tcp, handler, 0, shards="all")
            addresses = await nursery.start(functools.partial(serve, host="127.0.0.1"))
            keys = [b"apple", b"banana", b"cherry", b"damson", b"elder", b"fig"]
            pipeline = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k.upper()) for k in keys)
            pipeline += b"get " + b" ".join(keys) + b"\r\nstats\r\n"
            async with await shardio_net.open_tcp_stream("127.0.0.1", addresses[0][1]) as stream:
                await stream.send_all(pipeline)
                reply = b""
                while reply.count(b"END\r\n") < 2:  # the get's and the stats'
                    reply += await stream.receive_some()
            for line in reply.split(b"\r\n")[:-1]:
                print(line.decode())
            for shard, figures in enumerate(await stores.invoke_on_all(Store.stats)):
                owned = [k.decode() for k in keys if zlib.crc32(k) % 2 == shard]
                print(f"shard {shard}: {figures['items']} items {owned}")
            nursery.cancel_scope.cancel()


shardio.run(main, shards=2)
