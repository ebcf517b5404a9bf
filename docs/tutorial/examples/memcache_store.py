"""One shard's items: expiry, least-recently-used eviction under a memory limit."""

import time
from collections import OrderedDict


class Store:
    def __init__(self, memory_limit=64 << 20, clock=time.time):
        self.items = OrderedDict()  # key -> (flags, deadline, value); oldest use first
        self.memory_limit = memory_limit
        self.used = 0
        self.clock = clock
        self.evictions = 0

    def get(self, key):
        item = self.items.get(key)
        if item is None:
            return None
        flags, deadline, value = item
        if deadline and deadline <= self.clock():
            self.delete(key)  # expired: found dead, removed on the way
            return None
        self.items.move_to_end(key)  # most recently used now
        return flags, value

    def set(self, key, flags, exptime, value):
        deadline = self.clock() + exptime if exptime else 0
        self.delete(key)
        while self.items and self.used + len(key) + len(value) > self.memory_limit:
            oldest = next(iter(self.items))
            self.delete(oldest)  # the least recently used item makes room
            self.evictions += 1
        self.items[key] = (flags, deadline, value)
        self.used += len(key) + len(value)

    def delete(self, key):
        item = self.items.pop(key, None)
        if item is not None:
            self.used -= len(key) + len(item[2])
        return item is not None

    def stats(self):
        return {"items": len(self.items), "bytes": self.used, "evictions": self.evictions}
