uint32_t shardio_ones_sum(const unsigned char *data, size_t length);
