// SPDX-License-Identifier: Apache-2.0
// Baseline for the million-bindings benchmark: the raw cost of reading every
// entry of a pinned map back, as a C program would, with libbpf's
// bpf_map_lookup_batch (8,192 entries per call). It is the floor of any pass
// that reads the whole map, which a level-based pass does.
//   usage: map_read PINNED_MAP KEY_SIZE VALUE_SIZE
// Prints "NANOSECONDS ENTRIES".
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 8192

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s PINNED_MAP KEY_SIZE VALUE_SIZE\n", argv[0]);
		return 2;
	}
	int fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "bpf_obj_get %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	size_t key_size = (size_t)atoi(argv[2]), value_size = (size_t)atoi(argv[3]);
	char *keys = malloc(CHUNK * key_size), *values = malloc(CHUNK * value_size);
	char *in = malloc(key_size), *out = malloc(key_size);
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint64_t total = 0, t0 = now_ns();
	for (int first = 1;; first = 0) {
		uint32_t count = CHUNK;
		int err = bpf_map_lookup_batch(fd, first ? NULL : in, out, keys, values, &count, &opts);
		total += count;
		if (err && errno == ENOENT)
			break;
		if (err) {
			fprintf(stderr, "bpf_map_lookup_batch: %s\n", strerror(errno));
			return 1;
		}
		memcpy(in, out, key_size);
	}
	uint64_t t1 = now_ns();
	printf("%llu %llu\n", (unsigned long long)(t1 - t0), (unsigned long long)total);
	return 0;
}
