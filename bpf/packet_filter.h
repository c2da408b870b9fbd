/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of the packet filter's maps. The TypeScript side
 * (src/bpf/filter-layout.ts) encodes the same bytes; keep both in step.
 *
 * How a packet is matched (see docs/architecture.md, "The packet filter"):
 *
 * 1. Class lookups, one per field some rule constrains: the source and the
 *    destination address in the LPM trie of `addr_tables`, the source and the
 *    destination port in the array `port_classes` (indexed by generation,
 *    dimension and port: pf_port_index). Each yields a class
 *    id: the set of rules whose prefixes (or port ranges) contain the value,
 *    numbered by user space. 0 means no rule constrains the value that way.
 *    Each class value also carries, per protocol, the first rule (its
 *    `order`) among the rules that constrain only that field (and maybe the
 *    protocol) and match the class: those rules need no other lookup. The
 *    rules that constrain no field but maybe the protocol are in the config
 *    (`first`).
 * 2. Decision lookups, one per rule *pattern* in use that constrains two or
 *    more of the fields (at most 22, in practice none or a few, listed in the
 *    config so only those are looked up): the pattern and the
 *    class ids of its fields form a hash key whose value is the first rule of
 *    that pattern that matches. The smallest `order` over the config, the
 *    class values and these lookups wins; `rules` (indexed by generation and
 *    order) says what that rule does.
 * 3. A drop decision in audit mode (`audit` of the decision, `default_audit`
 *    of the config) passes the packet: it is counted as would-drop and
 *    reported like a drop, with the verdict PF_VERDICT_WOULD_DROP. Switching
 *    enforce <-> audit is a write of the tables, like any rule change.
 *
 * So the per-packet cost is a fixed number of map lookups, however many
 * rules or policies share the interface.
 */
#ifndef EBPF_POLICY_PACKET_FILTER_H
#define EBPF_POLICY_PACKET_FILTER_H

#include <linux/types.h>

/* Dimension byte of the class keys. */
#define PF_DIM_SRC 0
#define PF_DIM_DST 1

/* Pattern bits: which fields a rule constrains. A pattern is an OR of these. */
#define PF_MATCH_PROTO (1u << 0)
#define PF_MATCH_SRC (1u << 1)
#define PF_MATCH_DST (1u << 2)
#define PF_MATCH_SPORT (1u << 3)
#define PF_MATCH_DPORT (1u << 4)
#define PF_PATTERNS 32

/* Protocol classes of the decision key. */
#define PF_PROTO_OTHER 0
#define PF_PROTO_ICMP 1 /* ICMP for IPv4, ICMPv6 for IPv6 */
#define PF_PROTO_TCP 6
#define PF_PROTO_UDP 17

#define PF_ACTION_PASS 0
#define PF_ACTION_DROP 1

/* Inner LPM trie of addr_tables: prefixlen = 16 + address prefix length. */
struct pf_addr_key {
	__u32 prefixlen; /* bits of dim, family and addr that must match */
	__u8 dim;        /* PF_DIM_SRC or PF_DIM_DST */
	__u8 family;     /* 4 or 6 */
	__u8 addr[16];   /* IPv4 addresses in the first 4 bytes */
} __attribute__((packed));

/* port_classes: one struct pf_port_class per generation, dimension and port (host byte order). */
#define PF_PORT_CLASS_ENTRIES (2 * 2 * 65536)
static inline __u32 pf_port_index(__u32 gen, __u32 dim, __u16 port)
{
	return ((gen & 1) << 17) | ((dim & 1) << 16) | port;
}

/* Protocol indexes of pf_class.first and pf_config.first. */
#define PF_PIDX_OTHER 0
#define PF_PIDX_ICMP 1
#define PF_PIDX_TCP 2
#define PF_PIDX_UDP 3
#define PF_PIDX_MAX 4

/* No rule: the `order` of the folded first-rule fields when none matches. */
#define PF_NO_RULE 0xffff
/* Rules per generation in `rules` (every rule has a counter slot, so at most PF_MAX_SLOTS - 1). */
#define PF_MAX_RULES 16384

/* Value of the address tries. */
struct pf_class {
	__u32 cls;                 /* class id for the decision keys (0: no multi-field rule cares) */
	__u16 first[PF_PIDX_MAX];  /* per PF_PIDX_*: first one-field rule matching the class, PF_NO_RULE if none */
};

/* Value of port_classes (ports exist for TCP and UDP only). */
struct pf_port_class {
	__u32 cls;
	__u16 first[2];            /* TCP, UDP: first one-field rule matching the class, PF_NO_RULE if none */
};

/* Inner hash of decision_tables. Fields outside the pattern are 0. */
struct pf_decision_key {
	__u8 pattern; /* PF_MATCH_* bits */
	__u8 proto;   /* PF_PROTO_* */
	__u16 pad;
	__u32 src;    /* class ids, 1.. */
	__u32 dst;
	__u32 sport;
	__u32 dport;
};

/* Value of decision_tables and of `rules` (index: generation * PF_MAX_RULES + order). */
struct pf_decision {
	__u32 order;  /* position in the match order: the smallest matching one wins */
	__u32 slot;   /* counter slot of the rule (key of rule_stats and rule_meta) */
	__u32 sample; /* report every Nth dropped or would-drop packet (0 = never) */
	__u8 action;  /* PF_ACTION_* */
	__u8 audit;   /* 1: a drop is counted as would-drop and reported, and the packet passes */
	__u16 pad;
};

/* One per generation (the index is the generation, 0 or 1). */
struct pf_config {
	__u32 patterns;       /* bit p set: some rule has pattern p */
	__u32 lookups;        /* PF_MATCH_SRC/DST/SPORT/DPORT: class lookups worth doing */
	__u8 default_action;  /* when no rule matches: PF_ACTION_* */
	__u8 default_audit;   /* 1: a default drop is audited (would-drop) */
	__u16 pad;
	__u32 default_sample; /* report every Nth default drop or would-drop (0 = never) */
	__u32 n_patterns;     /* entries of pattern_list in use */
	__u8 pattern_list[PF_PATTERNS]; /* the multi-field patterns in use, ascending: one decision lookup each */
	__u16 first[PF_PIDX_MAX]; /* per PF_PIDX_*: first rule constraining no field but maybe the protocol */
	__u32 n_rules;        /* entries of the generation's slice of `rules` */
};

/*
 * Per-CPU value of rule_stats. Slot 0 counts the default action. packets and
 * bytes count every packet the slot decided; would_drop_* the part of them
 * that an audited drop passed (so real drops are packets - would_drop_packets
 * of a drop rule).
 */
struct pf_counter {
	__u64 packets;
	__u64 bytes;
	__u64 would_drop_packets;
	__u64 would_drop_bytes;
};

#define PF_DEFAULT_SLOT 0
#define PF_MAX_SLOTS 16384
#define PF_NAME_LEN 64

/* What user space remembers about a counter slot (status and events name rules by it). */
struct pf_rule_meta {
	char policy[PF_NAME_LEN];
	char rule[PF_NAME_LEN];
};

/* Reconciler records: "@attachment" and one per policy, length-prefixed JSON. */
#define PF_RECORD_LEN 4096
#define PF_MAX_RECORDS 4096
struct pf_record_key {
	char name[PF_NAME_LEN];
};
struct pf_record {
	__u32 len;
	char json[PF_RECORD_LEN - 4];
};

/* What a sampled packet got (pf_event.verdict). */
#define PF_VERDICT_DROP 1
#define PF_VERDICT_WOULD_DROP 2

/* A sampled drop or would-drop, sent through the `events` ring buffer. */
struct pf_event {
	__u64 time_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 slot;
	__u32 length;   /* bytes of the packet */
	__u8 family;    /* 4 or 6 */
	__u8 protocol;  /* IP protocol number */
	__u8 action;    /* PF_ACTION_* */
	__u8 flags;     /* PF_EVENT_* */
	__u16 sport;    /* host byte order; 0 without a TCP/UDP header */
	__u16 dport;
	__u8 src[16];
	__u8 dst[16];
	__u8 verdict;   /* PF_VERDICT_* */
	__u8 pad[3];
};

#define PF_EVENT_NO_PORTS 1 /* fragment or truncated header: ports unknown */

#define PF_EVENTS_BYTES (128 * 1024)

enum pf_stat {
	PF_STAT_NOT_IP = 0,     /* not IPv4/IPv6 (ARP, ...): always passed, not counted by rules */
	PF_STAT_NO_RULESET = 1, /* no generation written yet: passed */
	PF_STAT_NO_PORTS = 2,   /* fragment or truncated L4 header: matched without ports */
	PF_STAT_EVENTS_LOST = 3, /* the ring buffer was full */
	PF_STAT_MAX = 4,
};

#endif
