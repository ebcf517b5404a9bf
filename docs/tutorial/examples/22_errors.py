import shardio


class OutOfStock(Exception):
    pass


def reserve(item):
    raise OutOfStock(f"no {item} left")


class QuotaExceeded(Exception):
    def __init__(self, user, limit):
        super().__init__(f"{user} is over the limit of {limit}")


def upload(user):
    raise QuotaExceeded(user, 10)


def squares():
    return (n * n for n in range(10))


async def main():
    try:
        await shardio.run_on(1, sum, (n * n for n in range(10)))
    except TypeError as exc:
        print("TypeError:", str(exc).split(". ")[0])
    print("sent as a list instead:", await shardio.run_on(1, sum, [n * n for n in range(10)]))

    try:
        await shardio.run_on(1, reserve, "widgets")
    except OutOfStock as exc:
        remote = str(exc.__cause__).splitlines()
        print(f"OutOfStock: {exc}")
        print(f"  its __cause__ is a {type(exc.__cause__).__name__}: {remote[0]}")
        print(f"  ... {remote[-1]}")

    try:
        await shardio.run_on(1, upload, "alice")
    except shardio.RemoteError as exc:
        print("RemoteError:", exc)
        print(f"  type_name={exc.type_name!r} shard={exc.shard}")

    try:
        await shardio.run_on(1, squares)
    except TypeError as exc:
        print("TypeError:", exc)


shardio.run(main, shards=2)
