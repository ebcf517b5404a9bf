import shardio

visits = []  # a module global: every shard has its own copy


def visit(who):
    visits.append(who)
    return f"shard {shardio.current_shard()} has seen {visits}"


async def add_slowly(a, b):
    await shardio.sleep(0.1)
    return a + b


async def main():
    # A synchronous function, and an async one: run_on awaits either.
    print(await shardio.run_on(1, visit, "alice"))
    print(await shardio.run_on(1, visit, "bob"))
    print("add_slowly on shard 1:", await shardio.run_on(1, add_slowly, 2, 3))
    print("visits on shard 0:", visits)

    # Lambdas and closures travel by value: code and captured values are copied.
    bonus = 100
    print("a lambda:", await shardio.run_on(1, lambda x: x + bonus, 1))
    seen = []

    def note():
        seen.append(shardio.current_shard())
        return seen

    print("the closure returned", await shardio.run_on(1, note), "and here seen is", seen)

    # Arguments and results are copies too.
    order = {"items": 1}
    result = await shardio.run_on(1, lambda o: {**o, "items": o["items"] + 1}, order)
    print("sent", order, "got back", result, "| same object:", result is order)

    # A module global named in a lambda is the receiving shard's: shard 1's list.
    print("a lambda reading visits on shard 1 sees:", await shardio.run_on(1, lambda: visits))


shardio.run(main, shards=2)
