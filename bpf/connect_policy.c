/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connect guard: one set of four programs per cgroup (connect4, connect6,
 * sendmsg4, sendmsg6), attached with cgroup links next to whatever else runs
 * there, deciding outgoing connects (and UDP datagrams sent without connect)
 * by the rules of every ConnectPolicy on the cgroup. See connect_policy.h for
 * how a decision is made in a fixed number of map lookups.
 *
 * Return 1 allows; 0 makes connect()/sendmsg() fail with EPERM.
 *
 * VARIANT only exists so tests can build programs with other bytecode and
 * exercise an atomic link update.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "connect_policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define ORDER_NONE 0xffffffff

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cp_addr_key);
	__type(value, __u32);
	__uint(max_entries, CP_MAX_ADDRS);
} addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cp_port_key);
	__type(value, __u32);
	__uint(max_entries, CP_MAX_PORTS);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cp_decision_key);
	__type(value, struct cp_decision);
	__uint(max_entries, CP_MAX_DECISIONS);
} decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct cp_config);
	__uint(max_entries, 2);
} config SEC(".maps");

/* Key 0: the generation in use; 0xff until user space wrote one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} active SEC(".maps");

/* Written by user space for every slot in use: the programs only increment. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cp_counter);
	__uint(max_entries, CP_MAX_SLOTS);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, CP_STAT_MAX);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CP_EVENTS_BYTES);
} events SEC(".maps");

/* Written and read by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct cp_rule_meta);
	__uint(max_entries, CP_MAX_SLOTS);
} rule_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cp_record_key);
	__type(value, struct cp_record);
	__uint(max_entries, CP_MAX_RECORDS);
} records SEC(".maps");

/* The destination of one connect or datagram. */
struct cp_dest {
	__u8 family;
	__u8 protocol; /* IPPROTO_* (MPTCP reads as TCP) */
	__u8 hook;     /* CP_HOOK_* */
	__u8 pad;
	__u16 port;    /* host byte order */
	__u16 pad2;
	__u8 addr[16];
};

/* State of the scan over the config's (policy, pattern) list. */
struct scan {
	__u32 gen;
	__u32 dst;  /* class ids */
	__u32 port;
	__u8 proto; /* CP_PROTO_* */
	__u8 deny;  /* some policy denies (enforced) */
	__u16 pad;
	struct cp_decision best; /* the current policy's first matching rule so far */
	struct cp_dest dest;
};

static __always_inline void stat(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline void report(struct scan *s, struct cp_decision *d)
{
	struct cp_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	char comm[16] = {};

	if (!e) {
		stat(CP_STAT_EVENTS_LOST);
		return;
	}
	bpf_get_current_comm(comm, sizeof(comm));
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->slot = d->slot;
	__builtin_memcpy(e->comm, comm, sizeof(comm));
	e->port = s->dest.port;
	e->family = s->dest.family;
	e->protocol = s->dest.protocol;
	e->verdict = d->audit ? CP_VERDICT_WOULD_DENY : CP_VERDICT_DENY;
	e->hook = s->dest.hook;
	e->pad = 0;
	__builtin_memcpy(e->addr, s->dest.addr, 16);
	bpf_ringbuf_submit(e, 0);
}

/* Counts the decision of policy `policy` (its best rule, or its default) and records a deny. */
static __always_inline void finish_policy(struct scan *s, struct cp_config *cfg, __u8 policy)
{
	struct cp_decision d = s->best;
	struct cp_counter *c;
	__u64 n = 0;

	if (d.order == ORDER_NONE) {
		if (policy >= CP_MAX_POLICIES)
			return;
		d = cfg->defaults[policy & (CP_MAX_POLICIES - 1)];
	}
	c = bpf_map_lookup_elem(&rule_stats, &d.slot);
	if (c) {
		c->connects += 1;
		if (d.action == CP_ACTION_DENY) {
			if (d.audit)
				c->would_deny += 1;
			else
				c->denies += 1;
			n = c->denies + c->would_deny;
		}
	}
	if (d.action != CP_ACTION_DENY)
		return;
	if (!d.audit)
		s->deny = 1;
	if (d.sample && n % d.sample == 0)
		report(s, &d);
}

/* bpf_loop callback: the index-th (policy, pattern) of the config. */
static long scan_entry(__u64 index, void *ctx)
{
	struct scan *s = ctx;
	struct cp_decision_key key = {};
	struct cp_decision *d;
	struct cp_config *cfg;
	struct cp_scan_entry e;

	if (index >= CP_MAX_SCAN)
		return 1;
	cfg = bpf_map_lookup_elem(&config, &s->gen);
	if (!cfg)
		return 1;
	e = cfg->scan[index];
	if (e.pattern == CP_PATTERN_END) {
		finish_policy(s, cfg, e.policy);
		s->best.order = ORDER_NONE;
		return 0;
	}
	/* A pattern that constrains a field no rule prefix/range contains cannot match. */
	if (((e.pattern & CP_MATCH_DST) && !s->dst) || ((e.pattern & CP_MATCH_PORT) && !s->port))
		return 0;
	key.gen = s->gen;
	key.policy = e.policy;
	key.pattern = e.pattern;
	key.proto = (e.pattern & CP_MATCH_PROTO) ? s->proto : 0;
	key.dst = (e.pattern & CP_MATCH_DST) ? s->dst : 0;
	key.port = (e.pattern & CP_MATCH_PORT) ? s->port : 0;
	d = bpf_map_lookup_elem(&decisions, &key);
	if (d && d->order < s->best.order)
		s->best = *d;
	return 0;
}

static __always_inline __u32 addr_class(__u32 gen, struct cp_dest *dest)
{
	struct cp_addr_key key = {};
	__u32 *cls;

	key.prefixlen = 16 + (dest->family == 4 ? 32 : 128);
	key.gen = gen;
	key.family = dest->family;
	__builtin_memcpy(key.addr, dest->addr, 16);
	cls = bpf_map_lookup_elem(&addrs, &key);
	return cls ? *cls : 0;
}

static __always_inline __u32 port_class(__u32 gen, __u16 port)
{
	struct cp_port_key key = {};
	__u32 *cls;

	key.prefixlen = 8 + 16;
	key.gen = gen;
	key.port = bpf_htons(port);
	cls = bpf_map_lookup_elem(&ports, &key);
	return cls ? *cls : 0;
}

/*
 * Decides one destination: 1 allows, 0 denies. A global (not inlined)
 * function: the verifier checks it once for the four programs' paths.
 */
__attribute__((noinline)) int cp_decide(struct cp_dest *dest)
{
	struct scan s = {};
	struct cp_config *cfg;
	__u32 zero = 0, gen, n;
	__u32 *g;

	if (!dest)
		return 1;
#ifdef VARIANT
	if (dest->pad2 == 0xffff) /* never true: only changes the bytecode */
		return 1;
#endif
	g = bpf_map_lookup_elem(&active, &zero);
	if (!g || *g > 1) {
		stat(CP_STAT_NO_RULESET);
		return 1;
	}
	gen = *g;
	cfg = bpf_map_lookup_elem(&config, &gen);
	if (!cfg)
		return 1;
	s.gen = gen;
	s.dest = *dest;
	if (cfg->lookups & CP_MATCH_DST)
		s.dst = addr_class(gen, dest);
	if ((cfg->lookups & CP_MATCH_PORT) && (dest->protocol == IPPROTO_TCP || dest->protocol == IPPROTO_UDP))
		s.port = port_class(gen, dest->port);
	s.proto = dest->protocol == IPPROTO_TCP ? CP_PROTO_TCP : dest->protocol == IPPROTO_UDP ? CP_PROTO_UDP : CP_PROTO_OTHER;
	s.best.order = ORDER_NONE;
	n = cfg->n_scan;
	if (n > CP_MAX_SCAN)
		n = CP_MAX_SCAN;
	/* A helper loop: the verifier checks the body once. */
	bpf_loop(n, scan_entry, &s, 0);
	return s.deny ? 0 : 1;
}

static __always_inline __u8 protocol_of(struct bpf_sock_addr *ctx)
{
	__u32 p = ctx->protocol;

	return p == IPPROTO_MPTCP ? IPPROTO_TCP : (__u8)p;
}

static __always_inline int decide4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct cp_dest d = {};
	__u32 ip = ctx->user_ip4;

	d.family = 4;
	d.protocol = protocol_of(ctx);
	d.hook = hook;
	d.port = bpf_ntohs((__u16)ctx->user_port);
	__builtin_memcpy(d.addr, &ip, 4);
	return cp_decide(&d) ? 1 : 0; /* a global function returns an unknown scalar to the verifier */
}

static __always_inline int decide6(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct cp_dest d = {};
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	d.protocol = protocol_of(ctx);
	d.hook = hook;
	d.port = bpf_ntohs((__u16)ctx->user_port);
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		/* ::ffff:a.b.c.d: an IPv4 destination, decided as such. */
		d.family = 4;
		__builtin_memcpy(d.addr, &w3, 4);
	} else {
		d.family = 6;
		__builtin_memcpy(d.addr, &w0, 4);
		__builtin_memcpy(d.addr + 4, &w1, 4);
		__builtin_memcpy(d.addr + 8, &w2, 4);
		__builtin_memcpy(d.addr + 12, &w3, 4);
	}
	return cp_decide(&d) ? 1 : 0; /* a global function returns an unknown scalar to the verifier */
}

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	return decide4(ctx, CP_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	return decide6(ctx, CP_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide4(ctx, CP_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide6(ctx, CP_HOOK_SENDMSG6);
}
