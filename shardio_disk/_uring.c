/*
 * A minimal io_uring driver on the raw system calls (no liburing): set up a
 * ring, map its queues, write submission queue entries (SQEs), submit them
 * in one io_uring_enter, and copy completion queue entries (CQEs) out in
 * bulk. _uring.py drives it from the shard's scheduler; the essay on buffer
 * lifetime under cancellation is there.
 *
 * The rings are shared with the kernel. The submission side: we write SQEs
 * into the slots past the kernel's head, then release-store the new tail;
 * the kernel acquire-loads the tail in io_uring_enter, and release-stores
 * its head once it has consumed the entries. The completion side is the
 * mirror image: the kernel writes CQEs and release-stores the CQ tail; we
 * acquire-load the tail, copy the entries, and release-store the head so the
 * kernel may reuse the slots. One thread of one process uses a ring (it is
 * created with IORING_SETUP_SINGLE_ISSUER where the kernel has it), so the
 * fields only we write need no atomics.
 *
 * The ring is created with IORING_SETUP_COOP_TASKRUN | TASKRUN_FLAG where
 * supported: a completion that needs our task's context (most of them) is
 * then not forced on us by an inter-processor interrupt while Python runs;
 * it waits for our next system call, and the kernel sets IORING_SQ_TASKRUN
 * so a reaper that finds the CQ empty knows to enter the kernel for it. A
 * shard asleep in epoll_wait is still woken (the task work interrupts the
 * wait, runs, posts the CQE, and the CQE signals the registered eventfd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/stat.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "_uring.h"

/* Values newer than some installed kernel headers; the kernel ABI fixes them. */
#define OP_FTRUNCATE 55                      /* IORING_OP_FTRUNCATE, Linux 6.9 */
#define MASK_DIOALIGN 0x00002000u            /* STATX_DIOALIGN, Linux 6.1 */
#define MASK_DIO_READ_ALIGN 0x00020000u      /* STATX_DIO_READ_ALIGN, Linux 6.14 */
#define STATX_OFF_DIO_MEM_ALIGN 0x98         /* offsets in struct statx */
#define STATX_OFF_DIO_OFFSET_ALIGN 0x9c
#define STATX_OFF_DIO_READ_OFFSET_ALIGN 0xb4
#define STATX_SIZE_BYTES 0x100
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif

struct uring {
    int fd;
    /* submission queue */
    unsigned *sq_khead, *sq_ktail, *sq_kflags, *sq_array;
    unsigned sq_mask, sq_entries;
    struct io_uring_sqe *sqes;
    unsigned sqe_tail;  /* entries written (ours; published at submit) */
    unsigned submitted; /* entries handed to the kernel */
    /* completion queue */
    unsigned *cq_khead, *cq_ktail;
    unsigned cq_mask;
    struct io_uring_cqe *cqes;
    /* mappings */
    void *sq_ring;
    size_t sq_ring_size;
    void *cq_ring;
    size_t cq_ring_size;
    size_t sqes_size;
    /* the registered buffer (index 0), if any */
    uintptr_t fixed_base, fixed_end;
    unsigned char supported[256];
    uint64_t enter_calls, fixed_ops;
};

/* The operations shardio_disk needs; a kernel without one of them gets the
 * thread backend instead. FTRUNCATE is optional (a thread does it). */
static const int required_ops[] = {
    IORING_OP_READ,   IORING_OP_WRITE,  IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED,
    IORING_OP_FSYNC,  IORING_OP_FALLOCATE, IORING_OP_OPENAT,  IORING_OP_CLOSE,
    IORING_OP_STATX,  IORING_OP_ASYNC_CANCEL,
};

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned opcode, const void *arg, unsigned nr_args)
{
    return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

static void unmap_all(uring *r)
{
    if (r->sqes && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_size);
    if (r->cq_ring && r->cq_ring != MAP_FAILED && r->cq_ring != r->sq_ring)
        munmap(r->cq_ring, r->cq_ring_size);
    if (r->sq_ring && r->sq_ring != MAP_FAILED)
        munmap(r->sq_ring, r->sq_ring_size);
}

static int map_rings(uring *r, const struct io_uring_params *p)
{
    r->sq_ring_size = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    r->cq_ring_size = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        if (r->cq_ring_size > r->sq_ring_size)
            r->sq_ring_size = r->cq_ring_size;
        r->cq_ring_size = r->sq_ring_size;
    }
    r->sq_ring = mmap(NULL, r->sq_ring_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      r->fd, IORING_OFF_SQ_RING);
    if (r->sq_ring == MAP_FAILED)
        return -errno;
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        r->cq_ring = r->sq_ring;
    } else {
        r->cq_ring = mmap(NULL, r->cq_ring_size, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
        if (r->cq_ring == MAP_FAILED)
            return -errno;
    }
    r->sqes_size = p->sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                   IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        return -errno;

    char *sq = r->sq_ring, *cq = r->cq_ring;
    r->sq_khead = (unsigned *)(sq + p->sq_off.head);
    r->sq_ktail = (unsigned *)(sq + p->sq_off.tail);
    r->sq_kflags = (unsigned *)(sq + p->sq_off.flags);
    r->sq_array = (unsigned *)(sq + p->sq_off.array);
    r->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
    r->sq_entries = *(unsigned *)(sq + p->sq_off.ring_entries);
    r->cq_khead = (unsigned *)(cq + p->cq_off.head);
    r->cq_ktail = (unsigned *)(cq + p->cq_off.tail);
    r->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    /* SQE slot i is always array entry i: the indirection is not used. */
    for (unsigned i = 0; i < r->sq_entries; i++)
        r->sq_array[i] = i;
    r->sqe_tail = r->submitted = *r->sq_ktail;
    return 0;
}

static void probe_ops(uring *r)
{
    size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, size);
    if (!probe)
        return;
    if (sys_register(r->fd, IORING_REGISTER_PROBE, probe, 256) == 0) {
        for (unsigned i = 0; i < probe->ops_len && i < 256; i++)
            if (probe->ops[i].flags & IO_URING_OP_SUPPORTED)
                r->supported[probe->ops[i].op] = 1;
    }
    free(probe);
}

/* A ring with `entries` SQ slots and `cq_entries` CQ slots, or NULL with
 * *error set to the errno (ENOSYS, EPERM: io_uring unavailable here). */
uring *uring_create(unsigned entries, unsigned cq_entries, int *error)
{
    static const unsigned wanted[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    };
    uring *r = calloc(1, sizeof(*r));
    if (!r) {
        *error = ENOMEM;
        return NULL;
    }
    struct io_uring_params p;
    int fd = -1;
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = wanted[i];
        p.cq_entries = cq_entries;
        fd = sys_setup(entries, &p);
        if (fd >= 0 || errno != EINVAL)
            break;
    }
    if (fd < 0) {
        *error = errno;
        free(r);
        return NULL;
    }
    r->fd = fd;
    int err = map_rings(r, &p);
    if (err) {
        *error = -err;
        unmap_all(r);
        close(fd);
        free(r);
        return NULL;
    }
    probe_ops(r);
    return r;
}

/* Unmap and close. The caller has reaped every operation first (see
 * Uring.close in _uring.py): the kernel must not be writing into buffers
 * that Python may free once this returns. */
void uring_destroy(uring *r)
{
    unmap_all(r);
    close(r->fd);
    free(r);
}

/* The first required opcode this kernel lacks, or -1 if it has them all. */
int uring_missing_opcode(const uring *r)
{
    for (size_t i = 0; i < sizeof(required_ops) / sizeof(required_ops[0]); i++)
        if (!r->supported[required_ops[i]])
            return required_ops[i];
    return -1;
}

const char *uring_opcode_name(int opcode)
{
    switch (opcode) {
    case IORING_OP_READ: return "IORING_OP_READ";
    case IORING_OP_WRITE: return "IORING_OP_WRITE";
    case IORING_OP_READ_FIXED: return "IORING_OP_READ_FIXED";
    case IORING_OP_WRITE_FIXED: return "IORING_OP_WRITE_FIXED";
    case IORING_OP_FSYNC: return "IORING_OP_FSYNC";
    case IORING_OP_FALLOCATE: return "IORING_OP_FALLOCATE";
    case IORING_OP_OPENAT: return "IORING_OP_OPENAT";
    case IORING_OP_CLOSE: return "IORING_OP_CLOSE";
    case IORING_OP_STATX: return "IORING_OP_STATX";
    case IORING_OP_ASYNC_CANCEL: return "IORING_OP_ASYNC_CANCEL";
    default: return "an io_uring opcode";
    }
}

int uring_can_ftruncate(const uring *r) { return r->supported[OP_FTRUNCATE]; }

int uring_register_eventfd(uring *r, int eventfd)
{
    return sys_register(r->fd, IORING_REGISTER_EVENTFD, &eventfd, 1) < 0 ? -errno : 0;
}

/* Register [base, base + size) as fixed buffer 0. Fails with ENOMEM or EPERM
 * when the pages would exceed RLIMIT_MEMLOCK; reads and writes then use
 * plain (unregistered) buffers, which cost the kernel a page pin per I/O. */
int uring_register_buffer(uring *r, void *base, size_t size)
{
    struct iovec iov = {.iov_base = base, .iov_len = size};
    if (sys_register(r->fd, IORING_REGISTER_BUFFERS, &iov, 1) < 0)
        return -errno;
    r->fixed_base = (uintptr_t)base;
    r->fixed_end = (uintptr_t)base + size;
    return 0;
}

int uring_has_fixed_buffer(const uring *r) { return r->fixed_end != 0; }

/* ---- submission ---- */

/* The next free SQE, zeroed, or NULL if the SQ is full (submit first). */
static struct io_uring_sqe *next_sqe(uring *r)
{
    unsigned head = __atomic_load_n(r->sq_khead, __ATOMIC_ACQUIRE);
    if (r->sqe_tail - head >= r->sq_entries)
        return NULL;
    struct io_uring_sqe *sqe = &r->sqes[r->sqe_tail & r->sq_mask];
    r->sqe_tail++;
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

static int prep(uring *r, int opcode, int fd, uint64_t addr, uint32_t len, uint64_t off,
                uint64_t user_data, struct io_uring_sqe **out)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    sqe->opcode = (uint8_t)opcode;
    sqe->fd = fd;
    sqe->addr = addr;
    sqe->len = len;
    sqe->off = off;
    sqe->user_data = user_data;
    if (out)
        *out = sqe;
    return 0;
}

/* READ or WRITE; the FIXED form when the buffer lies in the registered one. */
static int prep_rw(uring *r, int op, int fixed_op, int fd, uintptr_t buf, uint32_t len,
                   int64_t pos, uint64_t user_data)
{
    int fixed = r->fixed_end && buf >= r->fixed_base && buf + len <= r->fixed_end;
    struct io_uring_sqe *sqe;
    int err = prep(r, fixed ? fixed_op : op, fd, buf, len, (uint64_t)pos, user_data, &sqe);
    if (err)
        return err;
    if (fixed) {
        sqe->buf_index = 0;
        r->fixed_ops++;
    }
    return 0;
}

/* pos -1 means the file's current position (for streams such as pipes). */
int uring_prep_read(uring *r, int fd, void *buf, uint32_t len, int64_t pos, uint64_t user_data)
{
    return prep_rw(r, IORING_OP_READ, IORING_OP_READ_FIXED, fd, (uintptr_t)buf, len, pos,
                   user_data);
}

int uring_prep_write(uring *r, int fd, const void *buf, uint32_t len, int64_t pos,
                     uint64_t user_data)
{
    return prep_rw(r, IORING_OP_WRITE, IORING_OP_WRITE_FIXED, fd, (uintptr_t)buf, len, pos,
                   user_data);
}

int uring_prep_fsync(uring *r, int fd, int datasync, uint64_t user_data)
{
    struct io_uring_sqe *sqe;
    int err = prep(r, IORING_OP_FSYNC, fd, 0, 0, 0, user_data, &sqe);
    if (!err && datasync)
        sqe->fsync_flags = IORING_FSYNC_DATASYNC;
    return err;
}

/* fallocate(fd, mode, pos, len): the length travels in addr, the mode in len. */
int uring_prep_fallocate(uring *r, int fd, int mode, int64_t pos, int64_t len,
                         uint64_t user_data)
{
    return prep(r, IORING_OP_FALLOCATE, fd, (uint64_t)len, (uint32_t)mode, (uint64_t)pos,
                user_data, NULL);
}

int uring_prep_ftruncate(uring *r, int fd, int64_t len, uint64_t user_data)
{
    return prep(r, OP_FTRUNCATE, fd, 0, 0, (uint64_t)len, user_data, NULL);
}

/* The kernel reads `path` when it issues the request: it must stay valid
 * until the completion (the caller keeps it alive with the operation). */
int uring_prep_openat(uring *r, int dirfd, const char *path, int flags, unsigned mode,
                      uint64_t user_data)
{
    struct io_uring_sqe *sqe;
    int err = prep(r, IORING_OP_OPENAT, dirfd, (uintptr_t)path, mode, 0, user_data, &sqe);
    if (!err)
        sqe->open_flags = (uint32_t)flags;
    return err;
}

int uring_prep_close(uring *r, int fd, uint64_t user_data)
{
    return prep(r, IORING_OP_CLOSE, fd, 0, 0, 0, user_data, NULL);
}

/* statx(dirfd, path, flags, mask, statxbuf): the buffer travels in off. */
int uring_prep_statx(uring *r, int dirfd, const char *path, int flags, unsigned mask,
                     void *statxbuf, uint64_t user_data)
{
    struct io_uring_sqe *sqe;
    int err = prep(r, IORING_OP_STATX, dirfd, (uintptr_t)path, mask, (uintptr_t)statxbuf,
                   user_data, &sqe);
    if (!err)
        sqe->statx_flags = (uint32_t)flags;
    return err;
}

/* Ask the kernel to cancel the request whose user_data is `target`. The
 * target still posts its own CQE (-ECANCELED, or its result if it was too
 * far along); this request posts one too (0, -ENOENT or -EALREADY). */
int uring_prep_cancel(uring *r, uint64_t target, uint64_t user_data)
{
    return prep(r, IORING_OP_ASYNC_CANCEL, -1, target, 0, 0, user_data, NULL);
}

unsigned uring_unsubmitted(const uring *r) { return r->sqe_tail - r->submitted; }

static unsigned taskrun_pending(const uring *r)
{
    return __atomic_load_n(r->sq_kflags, __ATOMIC_RELAXED) &
           (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

/* Hand every written SQE to the kernel: one io_uring_enter, more only if
 * the kernel stops early. Returns how many were submitted, or -errno with
 * the rest left for the next call (EAGAIN, EBUSY: reap completions first). */
int uring_submit(uring *r)
{
    unsigned pending = r->sqe_tail - r->submitted;
    int total = 0;
    if (!pending)
        return 0;
    __atomic_store_n(r->sq_ktail, r->sqe_tail, __ATOMIC_RELEASE);
    while (pending) {
        unsigned flags = taskrun_pending(r) ? IORING_ENTER_GETEVENTS : 0;
        int n = sys_enter(r->fd, pending, 0, flags);
        r->enter_calls++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        r->submitted += (unsigned)n;
        pending -= (unsigned)n;
        total += n;
    }
    return total;
}

/* Copy up to `max` completions into out[2i] (user_data) and out[2i+1]
 * (result), and free their slots. If the CQ looks empty but completions are
 * waiting as task work (or in the overflow list), enter the kernel to have
 * them posted first. */
int uring_reap(uring *r, int64_t *out, int max)
{
    unsigned head = *r->cq_khead;
    unsigned tail = __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE);
    if (head == tail) {
        if (!taskrun_pending(r))
            return 0;
        r->enter_calls++;
        if (sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR)
            return -errno;
        tail = __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE);
    }
    int n = 0;
    while (head != tail && n < max) {
        const struct io_uring_cqe *cqe = &r->cqes[head & r->cq_mask];
        out[2 * n] = (int64_t)cqe->user_data;
        out[2 * n + 1] = cqe->res;
        head++;
        n++;
    }
    __atomic_store_n(r->cq_khead, head, __ATOMIC_RELEASE);
    return n;
}

/* Is there anything to reap or submit? (Before the shard sleeps: if not,
 * the registered eventfd will be signalled by the next completion.) */
int uring_has_work(uring *r)
{
    return r->sqe_tail != r->submitted || taskrun_pending(r) ||
           *r->cq_khead != __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE);
}

/* Block until at least `min_complete` completions are in the CQ (teardown). */
int uring_wait(uring *r, unsigned min_complete)
{
    for (;;) {
        r->enter_calls++;
        if (sys_enter(r->fd, 0, min_complete, IORING_ENTER_GETEVENTS) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

uint64_t uring_enter_calls(const uring *r) { return r->enter_calls; }
uint64_t uring_fixed_ops(const uring *r) { return r->fixed_ops; }

/* ---- plain system calls for the thread backend ---- */

size_t statx_buffer_size(void) { return STATX_SIZE_BYTES; }

int statx_fd(int fd, unsigned mask, void *buf)
{
    if (syscall(__NR_statx, fd, "", AT_EMPTY_PATH, mask, buf) < 0)
        return -errno;
    return 0;
}

static uint32_t u32_at(const void *buf, size_t offset)
{
    uint32_t v;
    memcpy(&v, (const char *)buf + offset, sizeof(v));
    return v;
}

/* The fields read by offset are newer than some installed headers. */
void statx_decode(const void *buf, struct uring_file_info *out)
{
    const struct statx *st = buf;
    out->mask = st->stx_mask;
    out->blksize = st->stx_blksize;
    out->mode = st->stx_mode;
    out->size = st->stx_size;
    out->dev_major = st->stx_dev_major;
    out->dev_minor = st->stx_dev_minor;
    int dio = (st->stx_mask & MASK_DIOALIGN) != 0;
    out->dio_mem_align = dio ? u32_at(buf, STATX_OFF_DIO_MEM_ALIGN) : 0;
    out->dio_offset_align = dio ? u32_at(buf, STATX_OFF_DIO_OFFSET_ALIGN) : 0;
    out->dio_read_offset_align =
        (st->stx_mask & MASK_DIO_READ_ALIGN) ? u32_at(buf, STATX_OFF_DIO_READ_OFFSET_ALIGN) : 0;
}

int fallocate_fd(int fd, int mode, int64_t pos, int64_t len)
{
    return fallocate(fd, mode, (off_t)pos, (off_t)len) < 0 ? -errno : 0;
}
