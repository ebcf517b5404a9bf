/* Declarations shared by _ring.c and the cffi build (see _ring_build.py). */

typedef struct ring_header ring_header;

size_t ring_header_size(void);
void ring_init(ring_header *ring, uint32_t capacity);
uint32_t ring_max_record(const ring_header *ring);

int ring_push(ring_header *ring, const char *data, uint32_t len, uint32_t flags);
int64_t ring_peek(ring_header *ring, const char **data, uint32_t *flags);
int ring_pop(ring_header *ring, uint32_t len);
int ring_empty(const ring_header *ring);
uint64_t ring_used(const ring_header *ring);
int ring_want_space(ring_header *ring, uint32_t len);

int rings_pending(ring_header **rings, int count);
int shard_prepare_sleep(uint32_t *sleeping, ring_header **rings, int count);
void shard_end_sleep(uint32_t *sleeping);
int shard_take_doorbell(uint32_t *sleeping);

int set_parent_death_signal(int signum);
