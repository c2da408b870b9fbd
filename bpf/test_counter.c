/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A second, trivially different sk_lookup program used by the tests to prove
 * that an atomic link update swaps programs: it steers nothing and counts
 * every lookup it sees.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} seen SEC(".maps");

SEC("sk_lookup")
int pass_counter(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&seen, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
	return SK_PASS;
}

/* A plain hash map for the batch-operation tests. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 65536);
} big_hash SEC(".maps");
