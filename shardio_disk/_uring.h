/* Declarations shared by _uring.c, _arena.c and the cffi build (see _uring_build.py).
 * cffi parses this file: plain declarations only, no macros or includes. */

/* ---- the ring (_uring.c) ---- */

typedef struct uring uring;

/* What statx reported about a file, for the Python side. */
struct uring_file_info {
    uint32_t mask;                  /* the STATX_* bits the kernel filled in */
    uint32_t blksize;
    uint64_t size;
    uint32_t dev_major;             /* the device holding the file */
    uint32_t dev_minor;
    uint32_t dio_mem_align;         /* STATX_DIOALIGN: buffer alignment, 0 = no O_DIRECT */
    uint32_t dio_offset_align;      /* STATX_DIOALIGN: offset and length alignment */
    uint32_t dio_read_offset_align; /* STATX_DIO_READ_ALIGN: the same, for reads only */
    uint32_t mode;                  /* STATX_TYPE | STATX_MODE: file type and permissions */
};

uring *uring_create(unsigned entries, unsigned cq_entries, int *error);
void uring_destroy(uring *r);
int uring_missing_opcode(const uring *r);
const char *uring_opcode_name(int opcode);
int uring_can_ftruncate(const uring *r);
int uring_register_eventfd(uring *r, int eventfd);
int uring_register_buffer(uring *r, void *base, size_t size);
int uring_has_fixed_buffer(const uring *r);

int uring_prep_read(uring *r, int fd, void *buf, uint32_t len, int64_t pos, uint64_t user_data);
int uring_prep_write(uring *r, int fd, const void *buf, uint32_t len, int64_t pos,
                     uint64_t user_data);
int uring_prep_fsync(uring *r, int fd, int datasync, uint64_t user_data);
int uring_prep_fallocate(uring *r, int fd, int mode, int64_t pos, int64_t len,
                         uint64_t user_data);
int uring_prep_ftruncate(uring *r, int fd, int64_t len, uint64_t user_data);
int uring_prep_openat(uring *r, int dirfd, const char *path, int flags, unsigned mode,
                      uint64_t user_data);
int uring_prep_close(uring *r, int fd, uint64_t user_data);
int uring_prep_statx(uring *r, int dirfd, const char *path, int flags, unsigned mask,
                     void *statxbuf, uint64_t user_data);
int uring_prep_cancel(uring *r, uint64_t target, uint64_t user_data);

unsigned uring_unsubmitted(const uring *r);
int uring_submit(uring *r);
int uring_reap(uring *r, int64_t *out, int max);
int uring_has_work(uring *r);
int uring_wait(uring *r, unsigned min_complete);

uint64_t uring_enter_calls(const uring *r);
uint64_t uring_fixed_ops(const uring *r);

/* statx and fallocate as plain blocking syscalls, for the thread backend */
size_t statx_buffer_size(void);
int statx_fd(int fd, unsigned mask, void *buf);
void statx_decode(const void *buf, struct uring_file_info *out);
int fallocate_fd(int fd, int mode, int64_t pos, int64_t len);

/* ---- the DMA buffer arena (_arena.c) ---- */

int dma_arena_init(size_t size);
void *dma_arena_base(void);
size_t dma_arena_size(void);
size_t dma_arena_free_bytes(void);
void *dma_alloc(size_t size, size_t align, int zero);
void dma_free(void *p);
