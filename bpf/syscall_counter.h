/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of the syscall counter's maps (bpf/syscall_counter.c). The
 * TypeScript side (src/kinds/syscall-counter/layout.ts) encodes the same
 * bytes; keep both in step.
 *
 * One program serves every SyscallCounter policy: attached once to the raw
 * tracepoint raw_syscalls/sys_enter, it looks up the syscall number in
 * `wanted` (a bitmask of the policy slots that count it; a "*" policy's bit
 * is set in every word), and for each such
 * policy (whose cgroup filter, if any, holds the caller) increments a per-CPU
 * counter under a key made of the fields the policy groups by, in the
 * policy's own LRU hash (`counts`, one inner map per policy slot, sized to its
 * maxKeys). A syscall no policy counts costs one array lookup.
 */
#ifndef EBPF_POLICY_SYSCALL_COUNTER_H
#define EBPF_POLICY_SYSCALL_COUNTER_H

#include <linux/types.h>

#define SC_MAX_POLICIES 32
#define SC_MAX_SYSCALLS 1024 /* syscall numbers at or above are not counted */
#define SC_COMM_LEN 16
#define SC_NAME_LEN 64

/* groupBy bits of struct sc_policy. */
#define SC_BY_SYSCALL (1u << 0)
#define SC_BY_COMM (1u << 1)
#define SC_BY_CGROUP (1u << 2)
#define SC_BY_PID (1u << 3)

/* One per policy slot. */
struct sc_policy {
	__u32 in_use;   /* 1: the slot holds a policy */
	__u32 group_by; /* SC_BY_* */
	__u32 cgroup;   /* 1: count only tasks under the cgroup in `cgroups` at this slot */
	__u32 all;      /* 1: every syscall ("*") */
};

/* The key of a count: fields the policy does not group by are 0. No padding holes. */
struct sc_key {
	__u32 syscall;
	__u32 pid;       /* thread group id */
	__u64 cgroup_id;
	char comm[SC_COMM_LEN];
};

/* Key 0 of `config`. */
struct sc_config {
	__u64 all_mask;  /* policy slots counting every syscall (for user space: their bits are set in every `wanted` word) */
	__u32 n_slots;   /* 1 + the highest slot in use (0: none) */
	__u32 pad;
};

/* Reconciler records: one per policy, length-prefixed JSON. */
#define SC_RECORD_LEN 4096
#define SC_MAX_RECORDS 64
struct sc_record_key {
	char name[SC_NAME_LEN];
};
struct sc_record {
	__u32 len;
	char json[SC_RECORD_LEN - 4];
};

enum sc_stat {
	SC_STAT_NO_MAP = 0,     /* a wanted policy slot had no counts map */
	SC_STAT_UPDATE_FAILED = 1, /* a new key could not be inserted */
	SC_STAT_MAX = 2,
};

#endif
