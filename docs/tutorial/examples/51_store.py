from memcache_store import Store

now = 1000.0
store = Store(memory_limit=30, clock=lambda: now)  # a clock we move by hand

store.set(b"a", 0, 0, b"1234567890")
store.set(b"b", 0, 10, b"1234567890")  # expires 10 s from now
print("a:", store.get(b"a"), " b:", store.get(b"b"))

now += 10
print("10 s later, b:", store.get(b"b"))

store.set(b"c", 0, 0, b"1234567890")
store.get(b"a")  # a is now the most recently used
store.set(b"d", 0, 0, b"1234567890")  # no room: c, least recently used, goes
print("keys:", list(store.items), store.stats())
