import operator
import zlib
from collections import Counter

import shardio

TEXT = """It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch
of incredulity, it was the season of Light, it was the season of Darkness, it was
the spring of hope, it was the winter of despair"""


def owner(word):
    return zlib.crc32(word.encode()) % shardio.shard_count()


class WordCounts:
    def __init__(self):
        self.counts = Counter()


async def split_words(clauses, inboxes):
    """On each shard: send every word of its clauses to the inbox of the word's owner."""
    try:
        for clause in clauses:
            for word in clause.lower().split():
                await inboxes[owner(word)].send(word)
    finally:
        for inbox in inboxes:
            inbox.close()


async def count_words(inbox, counts):
    """On each shard: count the words it owns, in its own part of the service."""
    async with inbox:
        async for word in inbox:
            counts.local().counts[word] += 1


async def main():
    shards = shardio.shard_count()
    clauses = TEXT.split(", ")
    async with shardio.sharded(WordCounts) as counts:
        inboxes = [shardio.open_channel(64) for _ in range(shards)]
        async with shardio.open_nursery() as nursery:
            for shard, (_, receive) in enumerate(inboxes):
                nursery.start_soon(count_words, receive, counts, shard=shard)
            for shard in range(shards):
                clones = [send.clone() for send, _ in inboxes]
                nursery.start_soon(split_words, clauses[shard::shards], clones, shard=shard)
            for send, _ in inboxes:
                send.close()
        owned = await counts.invoke_on_all(lambda part: sorted(part.counts))
        total = await counts.map_reduce(lambda part: part.counts, operator.add, Counter())
    for shard, words in enumerate(owned):
        print(f"shard {shard} counted {len(words)} words:", " ".join(words))
    top = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:6]
    print(f"{total.total()} words; the most frequent:", top)


shardio.run(main, shards=2)
