/*
 * The DMA buffer arena: one anonymous mapping per process, carved into
 * aligned buffers by a buddy allocator, and registered with each shard's
 * io_uring as fixed buffer 0 (see _buffers.py for why and how it is sized).
 *
 * Buddy allocation: the arena is 2^max_order pages; a block of order k is
 * 2^k pages and starts at a page index that is a multiple of 2^k, so every
 * block is aligned to its own size (the base itself is aligned to the arena
 * size, up to 2 MiB). Allocating order k takes the smallest free block of
 * order >= k and splits it, pushing the upper halves on the free lists;
 * freeing merges a block with its buddy (index XOR 2^k) for as long as the
 * buddy is free and of the same order. The bookkeeping lives outside the
 * arena, in three small arrays indexed by page, so the arena's pages are
 * touched only by the I/O itself.
 *
 * Requests the arena cannot serve (too large, alignment above the base's,
 * arena full or absent) fall back to aligned_alloc: such buffers work the
 * same, the kernel just pins their pages per I/O instead of once.
 *
 * Buffers are freed by the garbage collector of whichever thread drops the
 * last reference (a worker of the thread backend, say), and cffi releases
 * the GIL around C calls: hence the mutex.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "_uring.h"

#define PAGE 4096u
#define MAX_BASE_ALIGN ((size_t)2 << 20)
#define NO_BLOCK 0u
#define FREE_BLOCK 0x40u
#define USED_BLOCK 0x80u
#define ORDER_BITS 0x3fu
#define MAX_ORDERS 32

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *base;
static size_t arena_bytes, base_align, free_bytes;
static unsigned max_order;
static uint8_t *state;      /* per page: FREE_BLOCK|order or USED_BLOCK|order at a block's first page */
static int32_t *next, *prev; /* the free lists, linked by page index */
static int32_t heads[MAX_ORDERS];

static void push_free(uint32_t page, unsigned order)
{
    state[page] = (uint8_t)(FREE_BLOCK | order);
    next[page] = heads[order];
    prev[page] = -1;
    if (heads[order] >= 0)
        prev[heads[order]] = (int32_t)page;
    heads[order] = (int32_t)page;
}

static void unlink_free(uint32_t page, unsigned order)
{
    if (prev[page] >= 0)
        next[prev[page]] = next[page];
    else
        heads[order] = next[page];
    if (next[page] >= 0)
        prev[next[page]] = prev[page];
    state[page] = NO_BLOCK;
}

/* Create the arena: `size` bytes, a power of two number of pages. Returns 0,
 * -EEXIST if there is one already, -EINVAL for a bad size, -ENOMEM. */
int dma_arena_init(size_t size)
{
    int err = 0;
    pthread_mutex_lock(&lock);
    if (base) {
        err = -EEXIST;
        goto out;
    }
    if (size < PAGE || (size & (size - 1))) {
        err = -EINVAL;
        goto out;
    }
    size_t pages = size / PAGE;
    unsigned order = 0;
    while (((size_t)1 << order) < pages)
        order++;
    if (order >= MAX_ORDERS) {
        err = -EINVAL;
        goto out;
    }
    size_t align = size < MAX_BASE_ALIGN ? size : MAX_BASE_ALIGN;
    /* Over-map, then trim to an aligned base. */
    char *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        err = -ENOMEM;
        goto out;
    }
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    if (start > (uintptr_t)raw)
        munmap(raw, start - (uintptr_t)raw);
    uintptr_t end = (uintptr_t)raw + size + align;
    if (end > start + size)
        munmap((void *)(start + size), end - (start + size));
    state = calloc(pages, sizeof(*state));
    next = calloc(pages, sizeof(*next));
    prev = calloc(pages, sizeof(*prev));
    if (!state || !next || !prev) {
        free(state);
        free(next);
        free(prev);
        state = NULL;
        next = prev = NULL;
        munmap((void *)start, size);
        err = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < MAX_ORDERS; i++)
        heads[i] = -1;
    base = (char *)start;
    arena_bytes = free_bytes = size;
    base_align = align;
    max_order = order;
    push_free(0, order);
out:
    pthread_mutex_unlock(&lock);
    return err;
}

void *dma_arena_base(void) { return base; }
size_t dma_arena_size(void) { return arena_bytes; }

size_t dma_arena_free_bytes(void)
{
    pthread_mutex_lock(&lock);
    size_t n = free_bytes;
    pthread_mutex_unlock(&lock);
    return n;
}

static void *arena_alloc(size_t need)
{
    unsigned order = 0;
    while (((size_t)PAGE << order) < need)
        order++;
    if (order > max_order)
        return NULL;
    unsigned k = order;
    while (k <= max_order && heads[k] < 0)
        k++;
    if (k > max_order)
        return NULL;
    uint32_t page = (uint32_t)heads[k];
    unlink_free(page, k);
    while (k > order) {
        k--;
        push_free(page + (1u << k), k);
    }
    state[page] = (uint8_t)(USED_BLOCK | order);
    free_bytes -= (size_t)PAGE << order;
    return base + (size_t)page * PAGE;
}

static void arena_free(char *p)
{
    uint32_t page = (uint32_t)((size_t)(p - base) / PAGE);
    unsigned order = state[page] & ORDER_BITS;
    free_bytes += (size_t)PAGE << order;
    state[page] = NO_BLOCK;
    while (order < max_order) {
        uint32_t buddy = page ^ (1u << order);
        if (state[buddy] != (FREE_BLOCK | order))
            break;
        unlink_free(buddy, order);
        if (buddy < page)
            page = buddy;
        order++;
    }
    push_free(page, order);
}

/* `size` bytes aligned to `align` (a power of two), zeroed if `zero`; from
 * the arena when it can, else from the heap. NULL if out of memory. */
void *dma_alloc(size_t size, size_t align, int zero)
{
    size_t need = size > align ? size : align;
    void *p = NULL;
    if (need < PAGE)
        need = PAGE;
    pthread_mutex_lock(&lock);
    if (base && align <= base_align && need <= arena_bytes)
        p = arena_alloc(need);
    pthread_mutex_unlock(&lock);
    if (!p) {
        size_t a = align < sizeof(void *) ? sizeof(void *) : align;
        size_t rounded = (need + a - 1) & ~(a - 1);
        p = aligned_alloc(a, rounded);
        if (!p)
            return NULL;
    }
    if (zero)
        memset(p, 0, size);
    return p;
}

void dma_free(void *p)
{
    char *c = p;
    if (base && c >= base && c < base + arena_bytes) {
        pthread_mutex_lock(&lock);
        arena_free(c);
        pthread_mutex_unlock(&lock);
    } else {
        free(p);
    }
}
