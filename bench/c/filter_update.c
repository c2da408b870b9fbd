// SPDX-License-Identifier: Apache-2.0
// Baseline for the packet filter benchmark: what a C program with libbpf
// does to switch a filter to a new rule set. It writes the same entries
// ebpf-policy writes: one fresh inner map per table (sized to its entries),
// filled with bpf_map_update_batch, put into the outer map's slot for the
// generation, the generation's port class slices and rules into the pinned
// port_classes and rules arrays (bpf_map_update_batch), the generation's
// config, then the switch of `active`.
// Prints the nanoseconds from the first map creation to the switch.
//   usage: filter_update FILTER_DIR TABLES_FILE GENERATION
// TABLES_FILE holds, for the addr and decision tables and the port_classes
// and rules entries in that order: u32 map type, key size, value size,
// count, then the keys, then the values; then the config (struct pf_config,
// 64 bytes).
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BPF_F_NO_PREALLOC_FLAG 1

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

struct table {
	uint32_t type, key_size, value_size, count;
	char *keys, *values;
};

static int pinned(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/map_%s", dir, name);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "bpf_obj_get %s: %s\n", path, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	static const char *outers[4] = { "addr_tables", "decision_tables", "port_classes", "rules" };
	struct table t[4];
	char config[64];
	FILE *f;

	if (argc != 4) {
		fprintf(stderr, "usage: %s FILTER_DIR TABLES_FILE GENERATION\n", argv[0]);
		return 2;
	}
	uint32_t gen = (uint32_t)atoi(argv[3]);
	f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	for (int i = 0; i < 4; i++) {
		if (fread(&t[i], 4, 4, f) != 4)
			return 1;
		t[i].keys = malloc((size_t)t[i].key_size * t[i].count + 1);
		t[i].values = malloc((size_t)t[i].value_size * t[i].count + 1);
		if (fread(t[i].keys, t[i].key_size, t[i].count, f) != t[i].count ||
		    fread(t[i].values, t[i].value_size, t[i].count, f) != t[i].count)
			return 1;
	}
	if (fread(config, 1, sizeof(config), f) != sizeof(config))
		return 1;
	fclose(f);
	int outer_fd[4], config_fd = pinned(argv[1], "config"), active_fd = pinned(argv[1], "active");
	for (int i = 0; i < 4; i++)
		outer_fd[i] = pinned(argv[1], outers[i]);
	if (config_fd < 0 || active_fd < 0 || outer_fd[0] < 0 || outer_fd[1] < 0 || outer_fd[2] < 0 || outer_fd[3] < 0)
		return 1;

	LIBBPF_OPTS(bpf_map_create_opts, create_opts, .map_flags = BPF_F_NO_PREALLOC_FLAG);
	LIBBPF_OPTS(bpf_map_batch_opts, batch_opts);
	uint64_t t0 = now_ns();
	for (int i = 0; i < 4; i++) {
		uint32_t max = t[i].count ? t[i].count : 1;
		/* port_classes and rules: written in place, a slice per generation. */
		int fd = i >= 2 ? outer_fd[i] : bpf_map_create(t[i].type, "pf_c_inner", t[i].key_size, t[i].value_size, max, &create_opts);
		if (fd < 0) {
			fprintf(stderr, "bpf_map_create: %s\n", strerror(errno));
			return 1;
		}
		for (uint32_t done = 0; done < t[i].count;) {
			uint32_t count = t[i].count - done < 8192 ? t[i].count - done : 8192;
			if (bpf_map_update_batch(fd, t[i].keys + (size_t)done * t[i].key_size, t[i].values + (size_t)done * t[i].value_size,
						 &count, &batch_opts)) {
				fprintf(stderr, "bpf_map_update_batch: %s\n", strerror(errno));
				return 1;
			}
			done += count;
		}
		uint32_t inner = (uint32_t)fd;
		if (i >= 2)
			continue;
		if (bpf_map_update_elem(outer_fd[i], &gen, &inner, BPF_ANY)) {
			fprintf(stderr, "outer update: %s\n", strerror(errno));
			return 1;
		}
	}
	if (bpf_map_update_elem(config_fd, &gen, config, BPF_ANY) || bpf_map_update_elem(active_fd, &(uint32_t){ 0 }, &gen, BPF_ANY)) {
		fprintf(stderr, "config/active update: %s\n", strerror(errno));
		return 1;
	}
	uint64_t t1 = now_ns();
	printf("%llu\n", (unsigned long long)(t1 - t0));
	return 0;
}
