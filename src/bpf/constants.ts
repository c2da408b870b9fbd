/**
 * Numeric constants of the BPF UAPI.
 *
 * Every value below was read from `linux/bpf.h`, `linux/if_link.h` and
 * `linux/perf_event.h` of linux-libc-dev 6.1 by compiling a program that
 * prints them (never typed from memory). Values the 6.1 headers do not have
 * yet are marked "newer than 6.1" with the kernel release and the upstream
 * header they come from.
 */
import { constants as osConstants } from 'node:os';

/** `enum xdp_action` (`linux/bpf.h`): what an XDP program returns. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

/** `TC_ACT_*` (`linux/pkt_cls.h`): what a tc (cls_bpf direct action, tcx) program returns. */
export const TcAction = { UNSPEC: -1, OK: 0, SHOT: 2 } as const;

/** `enum sk_action` (`linux/bpf.h`): what an sk_lookup program returns. */
export const SkAction = { DROP: 0, PASS: 1 } as const;

/** Address families (`AF_INET`, `AF_INET6` of `bits/socket.h`), as `struct bpf_sk_lookup` carries them. */
export const AddressFamily = { INET: 2, INET6: 10 } as const;

/** `enum bpf_prog_type` */
export const ProgType = {
  SOCKET_FILTER: 1,
  KPROBE: 2,
  SCHED_CLS: 3,
  SCHED_ACT: 4,
  TRACEPOINT: 5,
  XDP: 6,
  PERF_EVENT: 7,
  CGROUP_SKB: 8,
  CGROUP_SOCK: 9,
  RAW_TRACEPOINT: 17,
  CGROUP_SOCK_ADDR: 18,
  TRACING: 26,
  SK_LOOKUP: 30,
  SYSCALL: 31,
} as const;

/** `enum bpf_map_type` */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  SOCKHASH: 18,
  RINGBUF: 27,
} as const;

/** Map types whose values are stored once per possible CPU. */
export const PERCPU_MAP_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
]);

/** `enum bpf_attach_type` */
export const AttachType = {
  CGROUP_INET_INGRESS: 0,
  CGROUP_INET_EGRESS: 1,
  CGROUP_INET_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  CGROUP_INET4_BIND: 8,
  CGROUP_INET6_BIND: 9,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_UDP4_SENDMSG: 14,
  CGROUP_UDP6_SENDMSG: 15,
  CGROUP_SYSCTL: 18,
  CGROUP_UDP4_RECVMSG: 19,
  CGROUP_UDP6_RECVMSG: 20,
  CGROUP_GETSOCKOPT: 21,
  CGROUP_SETSOCKOPT: 22,
  TRACE_RAW_TP: 23,
  CGROUP_INET4_GETPEERNAME: 29,
  CGROUP_INET6_GETPEERNAME: 30,
  CGROUP_INET4_GETSOCKNAME: 31,
  CGROUP_INET6_GETSOCKNAME: 32,
  SK_LOOKUP: 36,
  XDP: 37,
  PERF_EVENT: 41,
  /** Newer than 6.1: Linux 6.6, upstream include/uapi/linux/bpf.h. */
  TCX_INGRESS: 46,
  /** Newer than 6.1: Linux 6.6, upstream include/uapi/linux/bpf.h. */
  TCX_EGRESS: 47,
} as const;

/** `enum bpf_link_type` */
export const LinkType = {
  UNSPEC: 0,
  RAW_TRACEPOINT: 1,
  TRACING: 2,
  CGROUP: 3,
  ITER: 4,
  NETNS: 5,
  XDP: 6,
  PERF_EVENT: 7,
  KPROBE_MULTI: 8,
  STRUCT_OPS: 9,
  /** Newer than 6.1: Linux 6.4. */
  NETFILTER: 10,
  /** Newer than 6.1: Linux 6.6. */
  TCX: 11,
  /** Newer than 6.1: Linux 6.6. */
  UPROBE_MULTI: 12,
  /** Newer than 6.1: Linux 6.7. */
  NETKIT: 13,
  /** Newer than 6.1: Linux 6.10. */
  SOCKMAP: 14,
} as const;

/** Flags of BPF_MAP_UPDATE_ELEM. */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2, LOCK: 4 } as const;
/** BPF_F_REPLACE for BPF_LINK_UPDATE: fail unless the old program is the expected one. */
export const BPF_F_REPLACE = 4;
/**
 * BPF_F_BEFORE for tcx links: attach before the relative program, or, with
 * none, in front of every program. Newer than 6.1: Linux 6.6, upstream
 * include/uapi/linux/bpf.h ("Generic attachment flags").
 */
export const BPF_F_BEFORE = 8;
/** BPF_F_NO_PREALLOC map flag (required by LPM tries). */
export const BPF_F_NO_PREALLOC = 1;
/** BPF_F_MMAPABLE map flag (`1U << 10`, linux/bpf.h): an array whose values user space can mmap (Linux 5.5). */
export const BPF_F_MMAPABLE = 1 << 10;
/** mmap(2) protections and flags (asm-generic/mman-common.h, linux/mman.h). */
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
/** sysconf(3) name of the page size (bits/confname.h). */
export const SC_PAGESIZE = 30;

/** XDP attach modes (`linux/if_link.h`). */
export const XdpFlags = { UPDATE_IF_NOEXIST: 1, SKB_MODE: 2, DRV_MODE: 4, HW_MODE: 8 } as const;
/** How an XDP program is attached, as IFLA_XDP_ATTACHED reports it (`enum XDP_ATTACHED_*`, `linux/if_link.h`). */
export const XdpAttached = { NONE: 0, DRV: 1, SKB: 2, HW: 3, MULTI: 4 } as const;

/** `linux/perf_event.h` */
export const Perf = {
  TYPE_TRACEPOINT: 2,
  SAMPLE_RAW: 1024,
  FLAG_FD_CLOEXEC: 8,
  ATTR_SIZE: 128,
} as const;

/** Object name length (BPF_OBJ_NAME_LEN) and program tag size (BPF_TAG_SIZE). */
export const BPF_OBJ_NAME_LEN = 16;
export const BPF_TAG_SIZE = 8;

/** Filesystem magic of bpffs (`linux/magic.h`: BPF_FS_MAGIC). */
export const BPF_FS_MAGIC = 0xcafe4a11;
/** Filesystem magic of tracefs (`linux/magic.h`: TRACEFS_MAGIC). */
export const TRACEFS_MAGIC = 0x74726163;

/** x86_64 syscall numbers (`asm/unistd_64.h`). */
export const Syscall = {
  perf_event_open: 298,
  setns: 308,
  pidfd_open: 434,
  pidfd_getfd: 438,
} as const;

/** `CLONE_NEWNET` for setns(2). */
export const CLONE_NEWNET = 0x40000000;
/** `F_DUPFD_CLOEXEC` for fcntl(2). */
export const F_DUPFD_CLOEXEC = 1030;

/**
 * errno values by name, as this platform defines them (node's table of the
 * C library's values): every module compares errno against these, never
 * against a number of its own.
 */
export const Errno = osConstants.errno;

/** Kernel-internal errno values that leak to user space. */
export const ENOTSUPP = 524;

/** Returns the key of `table` whose value is `value`, or `unknown(N)`. */
export function constantName(table: Record<string, number>, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k.toLowerCase();
  return `unknown(${value})`;
}
