/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of the connect guard's maps (bpf/connect_policy.c). The
 * TypeScript side (src/kinds/connect-policy/layout.ts) encodes the same
 * bytes; keep both in step.
 *
 * One guard per cgroup serves every ConnectPolicy on that cgroup. How a
 * connect (or an unconnected UDP sendmsg) is decided:
 *
 * 1. Class lookups: the destination address in the LPM trie `addrs`, the
 *    destination port in the LPM trie `ports`. Each yields a class id: the set
 *    of rules (of every policy of the guard) whose prefixes (or port ranges)
 *    contain the value, numbered by user space; 0 = no rule constrains it.
 * 2. Decision lookups: the config lists, per policy, the rule patterns in use
 *    (which of protocol, destination, port a rule constrains: at most 8), then
 *    an end marker. Per (policy, pattern) one hash lookup gives that policy's
 *    first rule of the pattern that matches; the smallest `order` wins within
 *    the policy. At the end marker the policy's decision is counted: its rule,
 *    or its default. A deny of any policy in enforce mode denies (EPERM); in
 *    audit mode it is counted as "would deny" and allowed.
 *
 * So the cost of a connect is a fixed number of lookups, however many rules
 * the policies have. Rule sets are double-buffered by a generation byte in
 * every key: user space writes the inactive generation, then flips `active`.
 */
#ifndef EBPF_POLICY_CONNECT_POLICY_H
#define EBPF_POLICY_CONNECT_POLICY_H

#include <linux/types.h>

/* Pattern bits: which fields a rule constrains. */
#define CP_MATCH_PROTO (1u << 0)
#define CP_MATCH_DST (1u << 1)
#define CP_MATCH_PORT (1u << 2)
#define CP_PATTERN_END 0xff /* end of a policy's patterns: count its decision */

#define CP_PROTO_OTHER 0
#define CP_PROTO_TCP 6
#define CP_PROTO_UDP 17

#define CP_ACTION_ALLOW 0
#define CP_ACTION_DENY 1

#define CP_MAX_POLICIES 16
#define CP_MAX_SCAN (CP_MAX_POLICIES * 9) /* 8 patterns and an end marker per policy */
#define CP_MAX_SLOTS 65536
#define CP_MAX_ADDRS 262144
#define CP_MAX_PORTS 65536
#define CP_MAX_DECISIONS (1 << 20)
#define CP_NAME_LEN 64

/* prefixlen = 16 + address prefix length (gen and family always match). */
struct cp_addr_key {
	__u32 prefixlen;
	__u8 gen;
	__u8 family; /* 4 or 6; IPv4-mapped IPv6 destinations are looked up as 4 */
	__u8 addr[16];
} __attribute__((packed));

/* prefixlen = 8 + port prefix bits. */
struct cp_port_key {
	__u32 prefixlen;
	__u8 gen;
	__be16 port;
} __attribute__((packed));

/* Fields outside the pattern are 0. */
struct cp_decision_key {
	__u8 gen;
	__u8 policy;  /* index of the policy in the guard (0..CP_MAX_POLICIES-1) */
	__u8 pattern; /* CP_MATCH_* bits */
	__u8 proto;   /* CP_PROTO_* */
	__u32 dst;    /* class ids */
	__u32 port;
};

/* A rule's (or a policy default's) decision. */
struct cp_decision {
	__u32 order;  /* position of the rule in its policy: the smallest matching one wins */
	__u32 slot;   /* counter slot (key of rule_stats and rule_meta) */
	__u32 sample; /* report every Nth deny or would-deny (0 = never) */
	__u8 action;  /* CP_ACTION_* */
	__u8 audit;   /* 1: a deny is counted and reported, not enforced */
	__u16 pad;
};

struct cp_scan_entry {
	__u8 policy;
	__u8 pattern; /* CP_MATCH_* bits, or CP_PATTERN_END */
};

/* One per generation (the index is the generation, 0 or 1). */
struct cp_config {
	__u32 lookups;  /* CP_MATCH_DST / CP_MATCH_PORT: class lookups worth doing */
	__u32 n_scan;   /* entries of scan in use */
	struct cp_scan_entry scan[CP_MAX_SCAN];
	struct cp_decision defaults[CP_MAX_POLICIES]; /* per policy: when none of its rules matches */
};

/* Per-CPU value of rule_stats. */
struct cp_counter {
	__u64 connects;   /* connects this rule (or default) decided */
	__u64 denies;     /* of which denied (EPERM) */
	__u64 would_deny; /* of which audited: would have been denied */
};

/* What user space remembers about a counter slot. */
struct cp_rule_meta {
	char policy[CP_NAME_LEN];
	char rule[CP_NAME_LEN]; /* "" for the policy's default */
};

/* Reconciler records: "@guard" and one per policy, length-prefixed JSON. */
#define CP_RECORD_LEN 4096
#define CP_MAX_RECORDS 64
struct cp_record_key {
	char name[CP_NAME_LEN];
};
struct cp_record {
	__u32 len;
	char json[CP_RECORD_LEN - 4];
};

#define CP_VERDICT_DENY 1
#define CP_VERDICT_WOULD_DENY 2

#define CP_HOOK_CONNECT4 0
#define CP_HOOK_CONNECT6 1
#define CP_HOOK_SENDMSG4 2
#define CP_HOOK_SENDMSG6 3

/* A sampled deny or would-deny, sent through the `events` ring buffer. */
struct cp_event {
	__u64 time_ns;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* the calling process's cgroup (the guard's or a descendant) */
	__u32 pid;       /* thread group id */
	__u32 slot;
	char comm[16];
	__u16 port;      /* host byte order */
	__u8 family;     /* 4 or 6 (IPv4-mapped destinations: 4) */
	__u8 protocol;   /* IPPROTO_* of the socket */
	__u8 verdict;    /* CP_VERDICT_* */
	__u8 hook;       /* CP_HOOK_* */
	__u16 pad;
	__u8 addr[16];
};

#define CP_EVENTS_BYTES (256 * 1024)

enum cp_stat {
	CP_STAT_NO_RULESET = 0, /* no generation written yet: allowed */
	CP_STAT_EVENTS_LOST = 1,
	CP_STAT_MAX = 2,
};

#endif
