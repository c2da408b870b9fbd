/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Syscall counter: one raw tracepoint program on raw_syscalls/sys_enter for
 * every SyscallCounter policy (see syscall_counter.h).
 *
 * VARIANT only exists so tests can build a program with other bytecode and
 * exercise an upgrade.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "syscall_counter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* syscall number -> bitmask of the policy slots that count it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SC_MAX_SYSCALLS);
} wanted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sc_config);
	__uint(max_entries, 1);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sc_policy);
	__uint(max_entries, SC_MAX_POLICIES);
} policies SEC(".maps");

/* Per slot: the cgroup whose subtree a policy counts (bpf_current_task_under_cgroup). */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, SC_MAX_POLICIES);
} cgroups SEC(".maps");

/*
 * Template of the per-slot counts: user space creates each slot's LRU hash
 * without BTF, sized to the policy's maxKeys, so the template gives sizes,
 * not BTF types (see packet_filter.c on bpf_map_meta_equal before 6.2).
 */
struct count_table {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(key_size, sizeof(struct sc_key));
	__uint(value_size, sizeof(__u64));
	__uint(max_entries, 1);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SC_MAX_POLICIES);
	__type(key, __u32);
	__array(values, struct count_table);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SC_STAT_MAX);
} stats SEC(".maps");

/* Written and read by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sc_record_key);
	__type(value, struct sc_record);
	__uint(max_entries, SC_MAX_RECORDS);
} records SEC(".maps");

static __always_inline void stat(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

/* Counts syscall `nr` for the policy in `slot`. */
static __always_inline void count(__u32 slot, __u32 nr)
{
	struct sc_policy *p = bpf_map_lookup_elem(&policies, &slot);
	struct sc_key key = {};
	__u64 one = 1, *v;
	void *table;

	if (!p || !p->in_use)
		return;
	if (p->cgroup && bpf_current_task_under_cgroup(&cgroups, slot) != 1)
		return;
	table = bpf_map_lookup_elem(&counts, &slot);
	if (!table) {
		stat(SC_STAT_NO_MAP);
		return;
	}
	if (p->group_by & SC_BY_SYSCALL)
		key.syscall = nr;
	if (p->group_by & SC_BY_PID)
		key.pid = bpf_get_current_pid_tgid() >> 32;
	if (p->group_by & SC_BY_CGROUP)
		key.cgroup_id = bpf_get_current_cgroup_id();
	if (p->group_by & SC_BY_COMM)
		bpf_get_current_comm(key.comm, sizeof(key.comm));
	v = bpf_map_lookup_elem(table, &key);
	if (v) {
		*v += 1;
		return;
	}
	/* A new key (this CPU's value 1, the others 0); another CPU may have inserted it meanwhile. */
	if (bpf_map_update_elem(table, &key, &one, BPF_NOEXIST) == 0)
		return;
	v = bpf_map_lookup_elem(table, &key);
	if (v)
		*v += 1;
	else
		stat(SC_STAT_UPDATE_FAILED);
}

/* raw_syscalls/sys_enter(struct pt_regs *regs, long id) */
SEC("raw_tracepoint/sys_enter")
int count_syscalls(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0, nr, slot, n;
	struct sc_config *cfg;
	__u64 *w, mask;

	/* Makes clang emit struct sc_key into BTF (the key reaches no map by type): tests check it has no padding. Never 0. */
	if (!bpf_core_type_id_local(struct sc_key))
		return 0;
	nr = (__u32)ctx->args[1];
	if (nr >= SC_MAX_SYSCALLS)
		return 0;
	/* The hot path: one array lookup decides that no policy counts this syscall ("*" policies have every bit). */
	w = bpf_map_lookup_elem(&wanted, &nr);
	if (!w || !*w)
		return 0;
	mask = *w;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return 0;
#ifdef VARIANT
	if (nr == 0xffffffff) /* never true: only changes the bytecode */
		return 0;
#endif
	n = cfg->n_slots;
	for (slot = 0; slot < SC_MAX_POLICIES; slot++) {
		if (slot >= n)
			break;
		if (mask & (1ULL << slot))
			count(slot, nr);
	}
	return 0;
}
