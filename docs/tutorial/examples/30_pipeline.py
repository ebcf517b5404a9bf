import shardio

POEM = """\
Hope is the thing with feathers
That perches in the soul,
And sings the tune without the words,
And never stops at all,"""


def say(message):
    print(f"shard {shardio.current_shard()}: {message}", flush=True)


async def read(lines):
    async with lines:  # closing the send end tells the receiver: no more lines
        for number, line in enumerate(POEM.splitlines(), 1):
            await lines.send((number, line))


async def count_words(lines, counts):
    home = lines.statistics().receiving_shard
    say(f"count_words: receiving lines; that channel now lives on shard {home}")
    async with lines, counts:
        async for number, line in lines:
            await counts.send((number, len(line.split())))


async def main():
    lines_send, lines_receive = shardio.open_channel(2)
    counts_send, counts_receive = shardio.open_channel(2)
    async with shardio.open_nursery() as nursery:
        nursery.start_soon(read, lines_send)
        nursery.start_soon(count_words, lines_receive, counts_send, shard=1)
        total = 0
        async for number, words in counts_receive:
            say(f"line {number}: {words} words")
            total += words
        home = counts_receive.statistics().receiving_shard
        say(f"{total} words in all; the counts channel lives on shard {home}")


shardio.run(main, shards=2)
