/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared layout of the sk_lookup dispatcher's maps. The TypeScript side
 * (src/bpf/dispatcher-layout.ts) encodes the same bytes; keep both in step.
 */
#ifndef EBPF_POLICY_DISPATCHER_H
#define EBPF_POLICY_DISPATCHER_H

#include <linux/types.h>

/*
 * LPM trie key. The prefix covers protocol, port and address, in that order.
 * IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d), so one trie serves
 * both families.
 *
 * - A binding of one port to an address prefix has prefixlen
 *   8 + 16 + (96 +) address bits.
 * - A binding of a block of ports to every address (both families) has
 *   prefixlen 8 + k: the top k bits of the port. Any port range splits into
 *   at most 30 such blocks, so "all addresses" bindings stay small.
 *
 * One longest-prefix lookup then picks the most specific binding: an exact
 * port beats a port block, and a longer address prefix beats a shorter one.
 */
struct binding_key {
	__u32 prefixlen; /* bits of the data below that must match */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 port;     /* destination port, network byte order */
	__u8 addr[16];   /* destination address, IPv6 or IPv4-mapped */
} __attribute__((packed));

#define BINDING_KEY_FULL_BITS (8 + 16 + 128)

struct binding_value {
	__u32 dest_id;    /* key into the sockets sockmap */
	__u32 binding_id; /* index into binding_hits, with BINDING_V6_ONLY */
};

/*
 * binding_id flag of a binding to an IPv6 prefix (other than an IPv4-mapped
 * one, ::ffff:0:0/96 and longer). IPv4 addresses are looked up IPv4-mapped,
 * so a short IPv6 prefix (::/0 up to ::/80, and ::ffff:0:0 below /96)
 * contains them too: an IPv4 lookup that lands on such an entry looks again
 * among the bindings of every address only (see dispatcher.c).
 */
#define BINDING_V6_ONLY (1u << 31)

#define MAX_BINDINGS 1048576
#define MAX_DESTINATIONS 65536
#define MAX_BINDING_IDS 65536
#define MAX_POLICIES 65536
#define POLICY_NAME_LEN 64
#define POLICY_RECORD_LEN 8192

/*
 * What the reconciler remembers about each applied policy (its source file,
 * spec hash, destination and binding ids), as a length-prefixed JSON
 * document. It lives in bpffs with the dispatcher and dies with it.
 */
struct policy_key {
	char name[POLICY_NAME_LEN];
};

struct policy_record {
	__u32 len;
	char json[POLICY_RECORD_LEN - 4];
};

enum dispatcher_stat {
	STAT_ASSIGNED = 0,     /* a connection was steered to a socket */
	STAT_NO_SOCKET = 1,    /* a binding matched but its socket is missing */
	STAT_ASSIGN_ERROR = 2, /* bpf_sk_assign refused the socket */
	STAT_MAX = 3,
};

#endif
