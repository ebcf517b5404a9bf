/*
 * Single-producer / single-consumer byte rings in shared memory, and the
 * sleep/doorbell protocol between shards. See _ring.py for the essay on the
 * memory ordering and the no-lost-wakeup argument; this file implements it.
 *
 * A ring is a header (producer's tail and consumer's head on their own cache
 * lines) followed by `capacity` bytes (a power of two). Records are 8-byte
 * aligned: a 4-byte length, a 4-byte flags word, the payload. A record never
 * wraps: when it does not fit before the end, the producer writes a WRAP
 * marker and starts at offset 0. head and tail are byte counters that only
 * grow; (tail - head) is the number of bytes in use.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>

#define CACHELINE 64
#define WRAP_MARKER 0xFFFFFFFFu
#define RECORD_HEADER 8u

struct ring_header {
    _Atomic uint64_t tail; /* written by the producer only */
    char pad0[CACHELINE - sizeof(uint64_t)];
    _Atomic uint64_t head; /* written by the consumer only */
    char pad1[CACHELINE - sizeof(uint64_t)];
    /* Set by a producer that found the ring full; the consumer rings the
     * producer's doorbell after it frees space. */
    _Atomic uint32_t producer_waiting;
    uint32_t capacity;
    char pad2[CACHELINE - 2 * sizeof(uint32_t)];
};

static inline uint64_t align8(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }
static inline char *ring_data(ring_header *ring) { return (char *)(ring + 1); }

size_t ring_header_size(void) { return sizeof(ring_header); }

void ring_init(ring_header *ring, uint32_t capacity)
{
    memset(ring, 0, sizeof(*ring));
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->head, 0);
    atomic_init(&ring->producer_waiting, 0);
    ring->capacity = capacity;
}

/* The largest payload one record may carry. Half the ring, so that a record
 * always fits once the consumer has drained enough, wherever the tail is. */
uint32_t ring_max_record(const ring_header *ring) { return ring->capacity / 2 - RECORD_HEADER; }

/* Producer: append one record. Returns 1, or 0 if the ring lacks space
 * (nothing written). The release store of tail publishes the bytes. */
int ring_push(ring_header *ring, const char *data, uint32_t len, uint32_t flags)
{
    uint32_t cap = ring->capacity;
    if (len > ring_max_record(ring))
        return -1;
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t need = align8(RECORD_HEADER + (uint64_t)len);
    uint64_t pos = tail & (cap - 1);
    uint64_t contiguous = cap - pos;
    uint64_t total = need > contiguous ? contiguous + need : need;
    if (total > cap - (tail - head))
        return 0;
    char *base = ring_data(ring);
    if (need > contiguous) {
        /* contiguous >= 8: records and the ring size are multiples of 8 */
        *(uint32_t *)(base + pos) = WRAP_MARKER;
        tail += contiguous;
        pos = 0;
    }
    *(uint32_t *)(base + pos) = len;
    *(uint32_t *)(base + pos + 4) = flags;
    memcpy(base + pos + RECORD_HEADER, data, len);
    atomic_store_explicit(&ring->tail, tail + need, memory_order_release);
    return 1;
}

/* Consumer: the next record's length, payload address and flags, without
 * consuming it; -1 if the ring is empty. The payload stays valid until
 * ring_pop. Skips a WRAP marker (that is a consumption of padding). */
int64_t ring_peek(ring_header *ring, const char **data, uint32_t *flags)
{
    uint32_t cap = ring->capacity;
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (head == tail)
        return -1;
    char *base = ring_data(ring);
    uint64_t pos = head & (cap - 1);
    uint32_t len = *(uint32_t *)(base + pos);
    if (len == WRAP_MARKER) {
        head += cap - pos;
        atomic_store_explicit(&ring->head, head, memory_order_release);
        /* The producer wrote the marker only because a record followed. */
        pos = 0;
        len = *(uint32_t *)base;
    }
    *flags = *(uint32_t *)(base + pos + 4);
    *data = base + pos + RECORD_HEADER;
    return (int64_t)len;
}

/* Consumer: release the record ring_peek returned. Returns 1 if the producer
 * is waiting for space and must be woken (its doorbell rung) by the caller. */
int ring_pop(ring_header *ring, uint32_t len)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    atomic_store_explicit(&ring->head, head + align8(RECORD_HEADER + (uint64_t)len),
                          memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ring->producer_waiting, memory_order_relaxed))
        return atomic_exchange_explicit(&ring->producer_waiting, 0, memory_order_relaxed);
    return 0;
}

int ring_empty(const ring_header *ring)
{
    return atomic_load_explicit(&ring->head, memory_order_relaxed) ==
           atomic_load_explicit(&ring->tail, memory_order_acquire);
}

uint64_t ring_used(const ring_header *ring)
{
    return atomic_load_explicit(&ring->tail, memory_order_acquire) -
           atomic_load_explicit(&ring->head, memory_order_acquire);
}

/* Would a record of `len` bytes fit now, exactly as ring_push would place it? */
static int ring_fits(ring_header *ring, uint32_t len)
{
    uint32_t cap = ring->capacity;
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t need = align8(RECORD_HEADER + (uint64_t)len);
    uint64_t contiguous = cap - (tail & (cap - 1));
    uint64_t total = need > contiguous ? contiguous + need : need;
    return total <= cap - (tail - head);
}

/* Producer, after ring_push returned 0: ask to be woken when space frees.
 * Returns 1 if a record of `len` bytes fits meanwhile (retry now), else 0:
 * sleeping is safe, because the consumer sees producer_waiting after its
 * next pop (the fences pair up as in the sleep protocol below). */
int ring_want_space(ring_header *ring, uint32_t len)
{
    atomic_store_explicit(&ring->producer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (ring_fits(ring, len)) {
        atomic_store_explicit(&ring->producer_waiting, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

/* Index of the first non-empty ring, or -1. One call polls every inbound ring. */
int rings_pending(ring_header **rings, int count)
{
    for (int i = 0; i < count; i++)
        if (rings[i] != NULL && !ring_empty(rings[i]))
            return i;
    return -1;
}

/* Consumer shard about to block in epoll_wait. Announce it, then look at the
 * rings once more. Returns 1 if a ring has data (the announcement is taken
 * back; do not sleep), 0 if sleeping is safe: any producer publishing after
 * this point sees the flag and rings the doorbell. */
int shard_prepare_sleep(uint32_t *sleeping, ring_header **rings, int count)
{
    _Atomic uint32_t *flag = (_Atomic uint32_t *)sleeping;
    atomic_store_explicit(flag, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (rings_pending(rings, count) >= 0) {
        atomic_store_explicit(flag, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

void shard_end_sleep(uint32_t *sleeping)
{
    atomic_store_explicit((_Atomic uint32_t *)sleeping, 0, memory_order_relaxed);
}

/* Producer, after publishing records for a shard: must its doorbell be rung?
 * Clears the flag, so that one producer rings once per sleep. */
int shard_take_doorbell(uint32_t *sleeping)
{
    _Atomic uint32_t *flag = (_Atomic uint32_t *)sleeping;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(flag, memory_order_relaxed) == 0)
        return 0;
    return atomic_exchange_explicit(flag, 0, memory_order_relaxed) == 1;
}

int set_parent_death_signal(int signum) { return prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0); }
