/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet filter: one program per (network namespace, interface, hook), with
 * an XDP entry point (filter_xdp) and a TC entry point (filter_tc, for tcx
 * links and cls_bpf). Rules live in maps, compiled by user space into class
 * tables and decision tables (see packet_filter.h); the per-packet cost is a
 * fixed number of lookups, whatever the number of rules.
 *
 * Rule sets are double-buffered: `addr_tables` and `decision_tables` hold
 * one inner map per generation, `port_classes` and `config` one slice or
 * entry per generation, and `active` names the generation in use. User space
 * fills the inactive generation and then flips `active`: a rule change is
 * atomic and needs no new program or link.
 *
 * VARIANT only exists so tests can build a second program with other
 * bytecode and exercise an atomic link update.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "packet_filter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * PF_STOP=k (1-4) builds a truncated program for the benchmark's cost
 * breakdown (bench/packet-filter.ts `variants`): it returns after the parse,
 * the generation lookups, the class lookups or the pattern scan. Never set
 * in the objects that are loaded for real.
 */
#ifndef PF_STOP
#define PF_STOP 0
#endif

/* Bytes of headers a TC program makes linear before parsing. */
#define PULL_LEN 128
/* IPv6 extension headers walked before giving up on the L4 header. */
#define MAX_EXT_HEADERS 6

/*
 * Templates of the inner maps. User space creates every generation's inner
 * maps itself (src/bpf/filter-store.ts, BPF_MAP_CREATE without BTF), and the
 * kernel only accepts an inner map whose metadata equals the template's
 * (bpf_map_meta_equal). Before Linux 6.2 that comparison includes
 * `timer_off`, which is -EINVAL for a map created without BTF but -ENOENT for
 * a map whose BTF value type is a struct without a bpf_timer: with
 * `__type(value, struct pf_decision)` here, every update of decision_tables
 * failed with EINVAL on 6.1. So the templates give sizes, not BTF types, and
 * are created without BTF exactly like the maps put into them.
 */
struct addr_table {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct pf_addr_key));
	__uint(value_size, sizeof(struct pf_class));
	__uint(max_entries, 1);
};

struct decision_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct pf_decision_key));
	__uint(value_size, sizeof(struct pf_decision));
	__uint(max_entries, 1);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct addr_table);
} addr_tables SEC(".maps");

/*
 * The port classes, one entry per (generation, dimension, port): index
 * pf_port_index(). A plain array the program owns (no map-in-map), so the
 * verifier inlines its lookup into an address computation: ~20 ns less per
 * port dimension than an LPM trie (docs/benchmarks.md). User space writes
 * the inactive generation's slices of the dimensions in use, then flips
 * `active`, like the other tables. 2 MiB per filter. Mmapable (Linux 5.5):
 * user space reads and writes the slices through a shared mapping, a
 * memcpy instead of 65,536 elements per batch syscall; the lookup stays
 * inlined.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct pf_port_class);
	__uint(max_entries, PF_PORT_CLASS_ENTRIES);
} port_classes SEC(".maps");

/*
 * What each rule does, by generation and match order (index gen *
 * PF_MAX_RULES + order): the rule the lookups pick is read here, an inlined
 * array lookup. User space writes the inactive generation's first n_rules
 * entries before it flips `active`. 512 KiB per filter. Mmapable, like
 * port_classes: user space reads and writes it through a shared mapping.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct pf_decision);
	__uint(max_entries, 2 * PF_MAX_RULES);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct decision_table);
} decision_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct pf_config);
	__uint(max_entries, 2);
} config SEC(".maps");

/* Key 0: the generation in use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} active SEC(".maps");

/*
 * Indexed by counter slot. User space zeroes a slot when it gives it to a
 * rule and when it frees it: the program only increments. A per-CPU array,
 * not a hash: its lookup is inlined by the verifier (an address computation)
 * where a hash lookup hashes the key and walks a bucket, ~20 ns per packet
 * (docs/benchmarks.md). The price is memory allocated up front:
 * PF_MAX_SLOTS * 32 bytes = 512 KiB per possible CPU per filter.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct pf_counter);
	__uint(max_entries, PF_MAX_SLOTS);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PF_STAT_MAX);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PF_EVENTS_BYTES);
} events SEC(".maps");

/* Written and read by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct pf_rule_meta);
	__uint(max_entries, PF_MAX_SLOTS);
} rule_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pf_record_key);
	__type(value, struct pf_record);
	__uint(max_entries, PF_MAX_RECORDS);
} records SEC(".maps");

/* The fields rules look at. */
struct pkt {
	__u8 family;
	__u8 proto;    /* IP protocol number */
	__u8 no_ports; /* fragment or truncated L4 header */
	__u8 pad;
	__u16 sport;   /* host byte order */
	__u16 dport;
	__u8 src[16];
	__u8 dst[16];
};

/* IPv6 fragment header (RFC 8200 4.5). */
struct frag6_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | flags */
	__be32 identification;
};

enum parse_result { PARSE_OK, PARSE_NOT_IP };

static __always_inline void stat(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline void l4_ports(void *cur, void *data_end, struct pkt *p)
{
	if (p->no_ports)
		return;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = cur;

		if ((void *)(th + 1) > data_end) {
			p->no_ports = 1;
			return;
		}
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = cur;

		if ((void *)(uh + 1) > data_end) {
			p->no_ports = 1;
			return;
		}
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
	}
}

/*
 * Ethernet (with up to two VLAN tags), IPv4 or IPv6 (with up to
 * MAX_EXT_HEADERS extension headers), then the ports. Header offsets are kept
 * as a masked scalar, not a packet pointer, so the verifier's states converge
 * however long the headers were.
 */
static __always_inline int parse(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 type;
	int i;

	if ((void *)(eth + 1) > data_end)
		return PARSE_NOT_IP;
	type = eth->h_proto;
#pragma unroll
	for (i = 0; i < 2; i++) {
		__be16 *inner;

		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		/* struct vlan_hdr: __be16 TCI, __be16 encapsulated protocol */
		inner = data + off + 2;
		if ((void *)(inner + 1) > data_end)
			return PARSE_NOT_IP;
		type = *inner;
		off += 4;
	}

	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		__u32 hlen;

		if ((void *)(ip + 1) > data_end)
			return PARSE_NOT_IP;
		hlen = ip->ihl * 4;
		if (hlen < sizeof(*ip))
			return PARSE_NOT_IP;
		p->family = 4;
		p->proto = ip->protocol;
		__builtin_memcpy(p->src, &ip->saddr, 4);
		__builtin_memcpy(p->dst, &ip->daddr, 4);
		/* Non-first fragments carry no L4 header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			p->no_ports = 1;
		off += hlen;
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		__u8 nh;

		if ((void *)(ip6 + 1) > data_end)
			return PARSE_NOT_IP;
		p->family = 6;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		nh = ip6->nexthdr;
		off += sizeof(*ip6);
		for (i = 0; i < MAX_EXT_HEADERS; i++) {
			__u8 this = nh;

			off &= 0x3ff;
			if (this == IPPROTO_HOPOPTS || this == IPPROTO_ROUTING || this == IPPROTO_DSTOPTS || this == IPPROTO_AH) {
				struct ipv6_opt_hdr *oh = data + off;

				if ((void *)(oh + 1) > data_end) {
					p->no_ports = 1;
					break;
				}
				nh = oh->nexthdr;
				/* AH counts 4-byte units minus 2, the others 8-byte units minus 1 (RFC 4302, RFC 8200). */
				off += this == IPPROTO_AH ? (oh->hdrlen + 2) * 4 : (oh->hdrlen + 1) * 8;
			} else if (this == IPPROTO_FRAGMENT) {
				struct frag6_hdr *fh = data + off;

				if ((void *)(fh + 1) > data_end) {
					p->no_ports = 1;
					break;
				}
				nh = fh->nexthdr;
				if (fh->frag_off & bpf_htons(0xfff8))
					p->no_ports = 1;
				off += sizeof(*fh);
			} else {
				break;
			}
		}
		p->proto = nh;
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH ||
		    nh == IPPROTO_FRAGMENT)
			p->no_ports = 1; /* more extension headers than we walk */
	} else {
		return PARSE_NOT_IP;
	}
	off &= 0x3ff;
	l4_ports(data + off, data_end, p);
	return PARSE_OK;
}

static __always_inline struct pf_class *addr_class(void *table, __u8 dim, struct pkt *p)
{
	struct pf_addr_key key = {};

	key.prefixlen = 16 + (p->family == 4 ? 32 : 128);
	key.dim = dim;
	key.family = p->family;
	if (dim == PF_DIM_SRC)
		__builtin_memcpy(key.addr, p->src, 16);
	else
		__builtin_memcpy(key.addr, p->dst, 16);
	return bpf_map_lookup_elem(table, &key);
}

static __always_inline struct pf_port_class *port_class(__u32 gen, __u32 dim, __u16 port)
{
	__u32 idx = pf_port_index(gen, dim, port);

	return bpf_map_lookup_elem(&port_classes, &idx);
}

/* The PF_PIDX_* of a packet. */
static __always_inline __u32 proto_index(struct pkt *p)
{
	if (p->proto == IPPROTO_TCP)
		return PF_PIDX_TCP;
	if (p->proto == IPPROTO_UDP)
		return PF_PIDX_UDP;
	if ((p->family == 4 && p->proto == IPPROTO_ICMP) || (p->family == 6 && p->proto == IPPROTO_ICMPV6))
		return PF_PIDX_ICMP;
	return PF_PIDX_OTHER;
}

/* The PF_PROTO_* (decision key) of a PF_PIDX_*. */
static __always_inline __u8 proto_class(__u32 pidx)
{
	return pidx == PF_PIDX_TCP ? PF_PROTO_TCP : pidx == PF_PIDX_UDP ? PF_PROTO_UDP : pidx == PF_PIDX_ICMP ? PF_PROTO_ICMP : PF_PROTO_OTHER;
}

static __always_inline void report(struct pkt *p, struct pf_decision *d, __u32 ifindex, __u32 len)
{
	struct pf_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		stat(PF_STAT_EVENTS_LOST);
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->ifindex = ifindex;
	e->slot = d->slot;
	e->length = len;
	e->family = p->family;
	e->protocol = p->proto;
	e->action = d->action;
	e->flags = p->no_ports ? PF_EVENT_NO_PORTS : 0;
	e->sport = p->sport;
	e->dport = p->dport;
	__builtin_memcpy(e->src, p->src, 16);
	__builtin_memcpy(e->dst, p->dst, 16);
	e->verdict = d->audit ? PF_VERDICT_WOULD_DROP : PF_VERDICT_DROP;
	e->pad[0] = 0;
	e->pad[1] = 0;
	e->pad[2] = 0;
	bpf_ringbuf_submit(e, 0);
}

/*
 * The inner map templates reach their key and value types through two
 * pointers, for which clang emits only forward declarations; libbpf needs the
 * full types to size the templates. These local type-id relocations make clang
 * emit them (the ids are never 0, so the check below never fails).
 */
static __always_inline int inner_types_emitted(void)
{
	return bpf_core_type_id_local(struct pf_addr_key) && bpf_core_type_id_local(struct pf_decision_key) &&
	       bpf_core_type_id_local(struct pf_decision) && bpf_core_type_id_local(struct pf_class);
}

/* State of the decision lookups over the multi-field patterns in use. */
struct pattern_scan {
	__u32 gen;
	__u32 cls[5]; /* protocol class, then the class ids of src, dst, sport, dport */
	__u32 best;   /* order of the first matching rule so far */
	__u8 list[PF_PATTERNS]; /* pf_config.pattern_list */
};

/* bpf_loop callback: the decision lookup of the index-th multi-field pattern in use, keeping the first rule in match order. */
static long scan_pattern(__u64 index, void *ctx)
{
	struct pattern_scan *s = ctx;
	struct pf_decision_key key = {};
	struct pf_decision *d;
	void *decisions;
	__u32 pat;

	if (index >= PF_PATTERNS)
		return 1;
	pat = s->list[index & (PF_PATTERNS - 1)];
	/* A pattern that constrains a field no rule prefix/range matched cannot match. */
	if (((pat & PF_MATCH_SRC) && !s->cls[1]) || ((pat & PF_MATCH_DST) && !s->cls[2]) ||
	    ((pat & PF_MATCH_SPORT) && !s->cls[3]) || ((pat & PF_MATCH_DPORT) && !s->cls[4]))
		return 0;
	key.pattern = pat;
	key.proto = (pat & PF_MATCH_PROTO) ? s->cls[0] : 0;
	key.src = (pat & PF_MATCH_SRC) ? s->cls[1] : 0;
	key.dst = (pat & PF_MATCH_DST) ? s->cls[2] : 0;
	key.sport = (pat & PF_MATCH_SPORT) ? s->cls[3] : 0;
	key.dport = (pat & PF_MATCH_DPORT) ? s->cls[4] : 0;
	decisions = bpf_map_lookup_elem(&decision_tables, &s->gen);
	if (!decisions)
		return 1;
	d = bpf_map_lookup_elem(decisions, &key);
	if (d && d->order < s->best)
		s->best = d->order;
	return 0;
}

/*
 * Classifies a parsed packet, counts it and maybe reports it; returns
 * PF_ACTION_PASS or PF_ACTION_DROP (never DROP for an audited drop, which is
 * counted as would-drop and reported, and passes). A global (not inlined) function: the
 * verifier checks it once, not once per path the parser can take.
 */
__attribute__((noinline)) int pf_classify(struct pkt *pp, __u32 len, __u32 ifindex)
{
	struct pf_decision *rule = 0;
	struct pf_config *cfg;
	struct pf_counter *c;
	struct pf_class *ac;
	struct pf_port_class *pc;
	void *addrs;
	__u32 zero = 0, gen, src = 0, dst = 0, sport = 0, dport = 0, n, pidx, first, idx, slot, sample;
	__u32 *g;
	__u8 action, audited;

	if (!pp)
		return PF_ACTION_PASS;
#ifdef VARIANT
	if (len == 0xffffffff) /* never true: only changes the bytecode */
		return PF_ACTION_PASS;
#endif
#if PF_STOP == 1
	return pp->proto + len + ifindex == 0xff ? PF_ACTION_DROP : PF_ACTION_PASS;
#endif
	g = bpf_map_lookup_elem(&active, &zero);
	if (!g)
		return PF_ACTION_PASS;
	gen = *g & 1;
	cfg = bpf_map_lookup_elem(&config, &gen);
	if (!cfg) {
		stat(PF_STAT_NO_RULESET);
		return PF_ACTION_PASS;
	}
	if (pp->no_ports)
		stat(PF_STAT_NO_PORTS);
	pidx = proto_index(pp);
	/* The rules that constrain no field but maybe the protocol. */
	first = cfg->first[pidx & (PF_PIDX_MAX - 1)];
#if PF_STOP == 2
	return cfg->lookups + first + len + ifindex == 0xdead ? PF_ACTION_DROP : PF_ACTION_PASS;
#endif
	/* Only the fields some rule constrains: no trie walk for an address no rule looks at. */
	if (cfg->lookups & (PF_MATCH_SRC | PF_MATCH_DST)) {
		addrs = bpf_map_lookup_elem(&addr_tables, &gen);
		if (!addrs) {
			stat(PF_STAT_NO_RULESET);
			return PF_ACTION_PASS;
		}
		if (cfg->lookups & PF_MATCH_SRC) {
			ac = addr_class(addrs, PF_DIM_SRC, pp);
			if (ac) {
				src = ac->cls;
				if (ac->first[pidx & (PF_PIDX_MAX - 1)] < first)
					first = ac->first[pidx & (PF_PIDX_MAX - 1)];
			}
		}
		if (cfg->lookups & PF_MATCH_DST) {
			ac = addr_class(addrs, PF_DIM_DST, pp);
			if (ac) {
				dst = ac->cls;
				if (ac->first[pidx & (PF_PIDX_MAX - 1)] < first)
					first = ac->first[pidx & (PF_PIDX_MAX - 1)];
			}
		}
	}
	/* Ports for TCP and UDP only: pf_port_class.first[pidx & 1] (PF_PIDX_TCP 2 -> 0, PF_PIDX_UDP 3 -> 1). */
	if (!pp->no_ports && (pidx == PF_PIDX_TCP || pidx == PF_PIDX_UDP)) {
		if (cfg->lookups & PF_MATCH_SPORT) {
			pc = port_class(gen, PF_DIM_SRC, pp->sport);
			if (pc) {
				sport = pc->cls;
				if (pc->first[pidx & 1] < first)
					first = pc->first[pidx & 1];
			}
		}
		if (cfg->lookups & PF_MATCH_DPORT) {
			pc = port_class(gen, PF_DIM_DST, pp->dport);
			if (pc) {
				dport = pc->cls;
				if (pc->first[pidx & 1] < first)
					first = pc->first[pidx & 1];
			}
		}
	}
#if PF_STOP == 3
	return (src + dst + sport + dport + first + len + ifindex) == 0xdead ? PF_ACTION_DROP : PF_ACTION_PASS;
#endif

	/* The rules that constrain two fields or more: one decision lookup per such pattern in use. */
	n = cfg->n_patterns;
	if (n > PF_PATTERNS)
		n = PF_PATTERNS;
	if (n > 0) {
		struct pattern_scan scan = {};

		scan.gen = gen;
		__builtin_memcpy(scan.list, cfg->pattern_list, PF_PATTERNS);
		scan.cls[0] = proto_class(pidx);
		scan.cls[1] = src;
		scan.cls[2] = dst;
		scan.cls[3] = sport;
		scan.cls[4] = dport;
		scan.best = first;
		/* A helper loop over the patterns in use: the verifier checks the body once. */
		bpf_loop(n, scan_pattern, &scan, 0);
		first = scan.best;
	}
#if PF_STOP == 4
	return first + len + ifindex == 0xdead ? PF_ACTION_DROP : PF_ACTION_PASS;
#endif
	if (first < PF_NO_RULE) {
		idx = gen * PF_MAX_RULES + (first & (PF_MAX_RULES - 1));
		rule = bpf_map_lookup_elem(&rules, &idx);
	}
	if (rule) {
		slot = rule->slot;
		action = rule->action;
		audited = action == PF_ACTION_DROP && rule->audit;
		sample = rule->sample;
	} else {
		slot = PF_DEFAULT_SLOT;
		action = cfg->default_action;
		audited = action == PF_ACTION_DROP && cfg->default_audit;
		sample = cfg->default_sample;
	}

	c = bpf_map_lookup_elem(&rule_stats, &slot);
	if (c) {
		c->packets += 1;
		c->bytes += len;
		if (audited) {
			c->would_drop_packets += 1;
			c->would_drop_bytes += len;
		}
		if (action == PF_ACTION_DROP && sample && c->packets % sample == 0) {
			struct pf_decision d = { .slot = slot, .action = action, .audit = audited };

			report(pp, &d, ifindex, len);
		}
	}
	return action == PF_ACTION_DROP && !audited ? PF_ACTION_DROP : PF_ACTION_PASS;
}

/* Parses and classifies one packet; returns PF_ACTION_PASS or PF_ACTION_DROP. */
static __always_inline __u32 filter(void *data, void *data_end, __u32 len, __u32 ifindex)
{
	struct pkt p = {};

	if (!inner_types_emitted())
		return PF_ACTION_PASS;
	if (parse(data, data_end, &p) != PARSE_OK) {
		stat(PF_STAT_NOT_IP);
		return PF_ACTION_PASS;
	}
	return pf_classify(&p, len, ifindex);
}

SEC("xdp")
int filter_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (filter(data, data_end, data_end - data, ctx->ingress_ifindex) == PF_ACTION_DROP)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("tc")
int filter_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	/* Headers may sit in paged data: make the first bytes linear. */
	if (data + PULL_LEN > data_end && skb->len > data_end - data) {
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	/* Drop: TC_ACT_SHOT (TCX_DROP). Pass: TC_ACT_UNSPEC (TCX_NEXT), so programs after us still run. */
	if (filter(data, data_end, skb->len, skb->ifindex) == PF_ACTION_DROP)
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}
