/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of the sk_lookup dispatcher's maps. The TypeScript side
 * (src/bpf/dispatcher-layout.ts) encodes the same bytes; keep both in step.
 */
#ifndef EBPF_POLICY_DISPATCHER_H
#define EBPF_POLICY_DISPATCHER_H

#include <linux/types.h>

/*
 * LPM trie key. The prefix covers protocol, port and address, in that order,
 * so a binding is "protocol + port + destination prefix". IPv4 addresses are
 * stored IPv4-mapped (::ffff:a.b.c.d), so one trie serves both families.
 * A binding with port 0 is a wildcard for every port of its prefix; the
 * program looks the exact port up first, so a specific port wins.
 */
struct binding_key {
	__u32 prefixlen; /* bits of the data below that must match */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 port;     /* destination port, network byte order; 0 = any */
	__u8 addr[16];   /* destination address, IPv6 or IPv4-mapped */
} __attribute__((packed));

#define BINDING_PREFIX_FIXED_BITS (8 + 16) /* protocol + port */
#define BINDING_KEY_FULL_BITS (BINDING_PREFIX_FIXED_BITS + 128)

struct binding_value {
	__u32 dest_id;    /* key into the sockets sockmap */
	__u32 binding_id; /* index into binding_hits */
};

#define MAX_BINDINGS 262144
#define MAX_DESTINATIONS 4096
#define MAX_BINDING_IDS 65536

enum dispatcher_stat {
	STAT_ASSIGNED = 0,  /* a connection was steered to a socket */
	STAT_NO_SOCKET = 1, /* a binding matched but its socket is missing */
	STAT_ASSIGN_ERROR = 2, /* bpf_sk_assign refused the socket */
	STAT_MAX = 3,
};

#endif
