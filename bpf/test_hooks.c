/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Minimal programs for every hook the kernel layer attaches to, used by the
 * link tests: each counts what it sees in its own slot of `hits`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum { HIT_XDP, HIT_TC, HIT_CONNECT4, HIT_TRACEPOINT, HIT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, HIT_MAX);
} hits SEC(".maps");

static __always_inline void hit(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	hit(HIT_XDP);
	return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	hit(HIT_TC);
	return 0; /* TC_ACT_OK; tcx reads 0 as TCX_PASS (ends the chain) */
}

SEC("cgroup/connect4")
int connect4_count(struct bpf_sock_addr *ctx)
{
	hit(HIT_CONNECT4);
	return 1; /* allow */
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_count(void *ctx)
{
	hit(HIT_TRACEPOINT);
	return 0;
}

/* Does nothing: what attaching any program to raw_syscalls/sys_enter costs by itself (bench/syscall-counter.ts). */
SEC("raw_tracepoint/sys_enter")
int raw_tp_nop(struct bpf_raw_tracepoint_args *ctx)
{
	return 0;
}
