/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sk_lookup dispatcher: one program per network namespace steers new
 * connections and datagrams for extra ports (and prefixes) to an existing
 * socket. Bindings live in an LPM trie, sockets in a sockmap: one trie lookup
 * per connection, however many policies are loaded.
 *
 * VARIANT only exists so tests can build a second program with other
 * bytecode and exercise an atomic upgrade.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "dispatcher.h"

#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct binding_key);
	__type(value, struct binding_value);
	__uint(max_entries, MAX_BINDINGS);
} bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MAX_DESTINATIONS);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, MAX_BINDING_IDS);
} binding_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

/* Written and read by the reconciler only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_record);
	__uint(max_entries, MAX_POLICIES);
} policies SEC(".maps");

static __always_inline void count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		*v += 1;
}

SEC("sk_lookup")
int dispatcher(struct bpf_sk_lookup *ctx)
{
	struct binding_key key = {};
	struct binding_value *val;
	struct bpf_sock *sk;
	__u32 dest_id;
	long err;

#ifdef VARIANT
	if (ctx->ingress_ifindex == 0xffffffff) /* never true: only changes the bytecode */
		return SK_PASS;
#endif
	key.prefixlen = BINDING_KEY_FULL_BITS;
	key.protocol = (__u8)ctx->protocol;
	key.port = bpf_htons((__u16)ctx->local_port);
	if (ctx->family == AF_INET) {
		__u32 ip4 = ctx->local_ip4;

		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip4, 4);
	} else if (ctx->family == AF_INET6) {
		__u32 ip6[4];

		ip6[0] = ctx->local_ip6[0];
		ip6[1] = ctx->local_ip6[1];
		ip6[2] = ctx->local_ip6[2];
		ip6[3] = ctx->local_ip6[3];
		__builtin_memcpy(key.addr, ip6, 16);
	} else {
		return SK_PASS;
	}

	val = bpf_map_lookup_elem(&bindings, &key);
	if (val && ctx->family == AF_INET && (val->binding_id & BINDING_V6_ONLY)) {
		/*
		 * An IPv6 prefix holding the IPv4-mapped addresses: it is not for
		 * IPv4. Every IPv4 binding would be a longer match than it, so what
		 * is left are the bindings of every address: the port blocks, whose
		 * prefixes end before the address. (An IPv6 ::/0 of this port has
		 * prefixlen 8 + 16 too, but then no binding of every address holds
		 * the port: that would be a conflict of identical prefixes.)
		 */
		key.prefixlen = 8 + 16;
		val = bpf_map_lookup_elem(&bindings, &key);
		if (val && (val->binding_id & BINDING_V6_ONLY))
			val = 0;
	}
	if (!val)
		return SK_PASS;

	dest_id = val->dest_id;
	count(&binding_hits, val->binding_id & ~BINDING_V6_ONLY);

	sk = bpf_map_lookup_elem(&sockets, &dest_id);
	if (!sk) {
		count(&stats, STAT_NO_SOCKET);
		return SK_PASS; /* fall back to the regular socket lookup */
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	count(&stats, err ? STAT_ASSIGN_ERROR : STAT_ASSIGNED);
	return SK_PASS;
}
