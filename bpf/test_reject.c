/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A program the verifier must reject (it dereferences a hash map value
 * without a NULL check; array lookups with a constant key may be proven
 * non-NULL by newer verifiers), so tests can prove the verifier log reaches the error.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} slot SEC(".maps");

SEC("xdp")
int unchecked(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&slot, &zero);

	*v += 1; /* no NULL check: "invalid mem access 'map_value_or_null'" */
	return XDP_PASS;
}
