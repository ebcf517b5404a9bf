import math
import time

import shardio


def budget():
    deadline = shardio.current_effective_deadline()
    if deadline == math.inf:
        return "no deadline"
    if deadline == -math.inf:
        return "-inf: already cancelled"
    return f"{deadline - shardio.current_time():.1f} s left"


async def main():
    print("outside any scope:       ", budget())
    with shardio.move_on_after(5):
        print("in a 5 s scope:          ", budget())
        with shardio.move_on_after(10):
            print("a 10 s scope inside it:  ", budget())
        with shardio.move_on_after(1) as inner:
            print("a 1 s scope inside it:   ", budget())
            inner.deadline += 2
            print("after deadline += 2:     ", budget())
            inner.cancel()
            print("after inner.cancel():    ", budget())
        with shardio.CancelScope(shield=True):
            print("in a shielded scope:     ", budget())
    print("same clock as time.monotonic():", abs(shardio.current_time() - time.monotonic()) < 0.01)


shardio.run(main)
