import shardio


async def double_slowly(x):
    await shardio.sleep(0.5)  # pretend this takes a while
    return 2 * x


async def main():
    print("computing...")
    result = await double_slowly(21)
    print("result:", result)
    return result


value = shardio.run(main)
print("shardio.run returned", value)
print("and with an argument:", shardio.run(double_slowly, 5))
