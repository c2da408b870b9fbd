// SPDX-License-Identifier: GPL-2.0
/*
 * A per-(source address, source port, protocol) packet counter at the XDP
 * hook, with a ring buffer event the first time a tuple is seen: the
 * example object of the Program kind (README.md). Every packet passes.
 *
 * The key has no padding holes: the explicit `pad` byte is zeroed, so two
 * packets of the same tuple always make the same key (a compiler-inserted
 * hole would hold stack garbage and split one tuple into many keys).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct tuple {
	__be32 saddr;
	__be16 sport;
	__u8 protocol;
	__u8 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct config {
	/* Count only packets to this destination port (0: any). */
	__be16 dport;
	/* Count nothing unless set. */
	bool enabled;
	__u8 pad;
};

struct event {
	__be32 saddr;
	__be16 sport;
	__u8 protocol;
	__u8 pad;
	__u64 bytes;
};

#ifndef COUNTS_MAX_ENTRIES
#define COUNTS_MAX_ENTRIES 16384
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, COUNTS_MAX_ENTRIES);
	__type(key, struct tuple);
	__type(value, struct counter);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

/* Puts struct event into the object's BTF (as bpf2go's -type needs too): `events` decodes records by it. */
const struct event *unused_event __attribute__((unused));

SEC("xdp")
int count_tuples(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->enabled)
		return XDP_PASS;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	/* Ports are in the first 4 bytes of both TCP and UDP headers. */
	__be16 *ports = (void *)ip + ip->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	if (cfg->dport && ports[1] != cfg->dport)
		return XDP_PASS;
#ifdef VARIANT
	/* A variant with other bytecode and the same maps, for upgrade tests. */
	if (ip->ttl == 0)
		return XDP_PASS;
#endif

	struct tuple key = { .saddr = ip->saddr, .sport = ports[0], .protocol = ip->protocol, .pad = 0 };
	__u64 len = data_end - data;
	struct counter *c = bpf_map_lookup_elem(&counts, &key);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
		return XDP_PASS;
	}
	struct counter first = { .packets = 1, .bytes = len };
	if (bpf_map_update_elem(&counts, &key, &first, BPF_NOEXIST) == 0) {
		struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			e->saddr = key.saddr;
			e->sport = key.sport;
			e->protocol = key.protocol;
			e->pad = 0;
			e->bytes = len;
			bpf_ringbuf_submit(e, 0);
		}
	} else if ((c = bpf_map_lookup_elem(&counts, &key))) {
		/* Another CPU created it first. */
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
