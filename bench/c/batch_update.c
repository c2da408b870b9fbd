// SPDX-License-Identifier: Apache-2.0
// Baseline for the reconciler benchmark: the raw cost of writing N dispatcher
// binding entries with libbpf's bpf_map_update_batch into a pinned LPM trie,
// as a C program would. Prints the nanoseconds the batch calls took.
//   usage: batch_update PINNED_MAP N [ENTRIES_FILE]
// Without ENTRIES_FILE it writes ports 1..N of 127.0.0.1/32 (tcp). With it,
// the file holds N keys (23 bytes each) then N values (8 bytes each), as
// the dispatcher's maps store them: the same entries ebpf-policy writes.
// Entries per call: 8,192, or the environment's BATCH_CHUNK.
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct key {
	uint32_t prefixlen;
	uint8_t protocol;
	uint16_t port; /* network order */
	uint8_t addr[16];
} __attribute__((packed));

struct value {
	uint32_t dest_id;
	uint32_t binding_id;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s PINNED_MAP N [ENTRIES_FILE]\n", argv[0]);
		return 2;
	}
	int fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "bpf_obj_get %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	uint32_t n = (uint32_t)atoi(argv[2]);
	struct key *keys = calloc(n, sizeof(*keys));
	struct value *values = calloc(n, sizeof(*values));
	if (argc == 4) {
		FILE *f = fopen(argv[3], "rb");
		if (!f || fread(keys, sizeof(*keys), n, f) != n || fread(values, sizeof(*values), n, f) != n) {
			fprintf(stderr, "reading %u entries from %s failed\n", n, argv[3]);
			return 1;
		}
		fclose(f);
	}
	for (uint32_t i = 0; argc == 3 && i < n; i++) {
		keys[i].prefixlen = 8 + 16 + 96 + 32;
		keys[i].protocol = 6;
		keys[i].port = __builtin_bswap16((uint16_t)(i + 1));
		keys[i].addr[10] = 0xff;
		keys[i].addr[11] = 0xff;
		keys[i].addr[12] = 127;
		keys[i].addr[15] = 1;
		values[i].dest_id = 1;
		values[i].binding_id = 0;
	}
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	const char *chunk_env = getenv("BATCH_CHUNK");
	uint32_t chunk = chunk_env && atoi(chunk_env) > 0 ? (uint32_t)atoi(chunk_env) : 8192;
	uint64_t t0 = now_ns();
	for (uint32_t done = 0; done < n;) {
		uint32_t count = n - done < chunk ? n - done : chunk;
		if (bpf_map_update_batch(fd, keys + done, values + done, &count, &opts)) {
			fprintf(stderr, "bpf_map_update_batch: %s\n", strerror(errno));
			return 1;
		}
		done += count;
	}
	uint64_t t1 = now_ns();
	printf("%llu\n", (unsigned long long)(t1 - t0));
	return 0;
}
