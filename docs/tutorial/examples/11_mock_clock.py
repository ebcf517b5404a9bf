import time

import shardio
from shardio.testing import MockClock


async def main():
    real_start = time.perf_counter()
    print("virtual time at the start:", shardio.current_time())
    with shardio.move_on_after(24 * 60 * 60) as scope:
        await shardio.sleep(3600)
        print("an hour later:", shardio.current_time())
        await shardio.sleep_forever()
    print("a day later:", shardio.current_time(), "| cancelled_caught =", scope.cancelled_caught)
    print("real seconds spent, under 0.5:", time.perf_counter() - real_start < 0.5)


shardio.run(main, clock=MockClock(autojump_threshold=0))
