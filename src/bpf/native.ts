/**
 * The FFI boundary: libbpf 1.1 (`libbpf.so.1`) and libc through koffi.
 *
 * This module, and only this module, declares foreign functions. It holds no
 * fds: the classes in program.ts, map.ts, link.ts and fd.ts own them.
 * Libraries are loaded on first use so that code paths without a kernel
 * (validation, planning) never need libbpf installed.
 */
import koffi, { type LibraryHandle } from 'koffi';

/** Pointer values as koffi 3 returns them: a BigInt address, or null for NULL. */
export type Ptr = bigint | null;

type Fn<A extends unknown[], R> = (...args: A) => R;

/** The libbpf and libc entry points we use, with their C signatures. */
export interface Native {
  // libbpf: objects
  bpf_object__open_file: Fn<[string, Buffer | null], Ptr>;
  bpf_object__open_mem: Fn<[Buffer, number, Buffer | null], Ptr>;
  bpf_object__load: Fn<[Ptr], number>;
  bpf_object__close: Fn<[Ptr], void>;
  bpf_object__next_program: Fn<[Ptr, Ptr], Ptr>;
  bpf_object__next_map: Fn<[Ptr, Ptr], Ptr>;
  bpf_program__name: Fn<[Ptr], string>;
  bpf_program__section_name: Fn<[Ptr], string>;
  bpf_program__fd: Fn<[Ptr], number>;
  bpf_program__type: Fn<[Ptr], number>;
  bpf_map__name: Fn<[Ptr], string>;
  bpf_map__fd: Fn<[Ptr], number>;
  bpf_map__reuse_fd: Fn<[Ptr, number], number>;
  // libbpf: low-level syscall wrappers (return -errno and set errno)
  bpf_map_update_elem: Fn<[number, Buffer, Buffer, number | bigint], number>;
  bpf_map_lookup_elem: Fn<[number, Buffer, Buffer], number>;
  bpf_map_delete_elem: Fn<[number, Buffer], number>;
  bpf_map_get_next_key: Fn<[number, Buffer | null, Buffer], number>;
  bpf_map_update_batch: Fn<[number, Buffer, Buffer, Buffer, Buffer | null], number>;
  bpf_map_lookup_batch: Fn<[number, Buffer | null, Buffer, Buffer, Buffer, Buffer, Buffer | null], number>;
  bpf_map_delete_batch: Fn<[number, Buffer, Buffer, Buffer | null], number>;
  bpf_obj_pin: Fn<[number, string], number>;
  bpf_obj_get: Fn<[string], number>;
  bpf_link_create: Fn<[number, number, number, Buffer | null], number>;
  bpf_link_update: Fn<[number, number, Buffer | null], number>;
  bpf_raw_tracepoint_open: Fn<[string, number], number>;
  bpf_link_detach: Fn<[number], number>;
  bpf_prog_get_next_id: Fn<[number, Buffer], number>;
  bpf_map_get_next_id: Fn<[number, Buffer], number>;
  bpf_link_get_next_id: Fn<[number, Buffer], number>;
  bpf_prog_get_fd_by_id: Fn<[number], number>;
  bpf_map_get_fd_by_id: Fn<[number], number>;
  bpf_link_get_fd_by_id: Fn<[number], number>;
  bpf_btf_get_fd_by_id: Fn<[number], number>;
  bpf_obj_get_info_by_fd: Fn<[number, Buffer, Buffer], number>;
  bpf_prog_load: Fn<[number, string | null, string, Buffer, number, Buffer | null], number>;
  bpf_map_create: Fn<[number, string | null, number, number, number, Buffer | null], number>;
  bpf_prog_test_run_opts: Fn<[number, Buffer], number>;
  ring_buffer__new: Fn<[number, bigint, Ptr, Buffer | null], Ptr>;
  ring_buffer__add: Fn<[Ptr, number, bigint, Ptr], number>;
  ring_buffer__consume: Fn<[Ptr], number>;
  ring_buffer__free: Fn<[Ptr], void>;
  libbpf_num_possible_cpus: Fn<[], number>;
  libbpf_probe_bpf_prog_type: Fn<[number, null], number>;
  libbpf_probe_bpf_map_type: Fn<[number, null], number>;
  libbpf_probe_bpf_helper: Fn<[number, number, null], number>;
  libbpf_set_print: Fn<[bigint | null], bigint | null>;
  // libc
  close: Fn<[number], number>;
  fcntl: Fn<[number, number, ...unknown[]], number>;
  syscall: Fn<[number, ...unknown[]], number | bigint>;
  setns: Fn<[number, number], number>;
  mount: Fn<[string, string, string, number, string | null], number>;
  vsnprintf: Fn<[Buffer, number, bigint, bigint], number>;
  getsockopt: Fn<[number, number, number, Buffer, Buffer], number>;
  flock: Fn<[number, number], number>;
  socket: Fn<[number, number, number], number>;
  send: Fn<[number, Buffer, number, number], number>;
  recv: Fn<[number, Buffer, number, number], number>;
  /** mmap(2): the address, or MAP_FAILED ((void *)-1) with errno set. */
  mmap: Fn<[Ptr, number, number, number, number, number], Ptr>;
  munmap: Fn<[bigint, number], number>;
  sysconf: Fn<[number], number>;
  /** The errno left by the last foreign call. Read it right after the call. */
  errno: () => number;
}

let native: Native | undefined;
/** Messages libbpf printed since the last drain (see {@link drainLibbpfLog}). */
const libbpfLog: string[] = [];
let printCallback: bigint | undefined;

/**
 * Returns the bound native functions, loading libbpf.so.1 and libc on first
 * call. Throws an Error naming the package to install when libbpf is missing.
 */
export function lib(): Native {
  if (native) return native;
  let bpf: LibraryHandle;
  try {
    bpf = koffi.load('libbpf.so.1');
  } catch (err) {
    throw new Error('cannot load libbpf.so.1: install the Debian package libbpf1 (scripts/setup.sh does)', {
      cause: err,
    });
  }
  const c = koffi.load('libc.so.6');
  const f = (l: LibraryHandle, decl: string) => l.func(decl) as never;
  native = {
    bpf_object__open_file: f(bpf, 'void *bpf_object__open_file(const char *path, const void *opts)'),
    bpf_object__open_mem: f(bpf, 'void *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz, const void *opts)'),
    bpf_object__load: f(bpf, 'int bpf_object__load(void *obj)'),
    bpf_object__close: f(bpf, 'void bpf_object__close(void *obj)'),
    bpf_object__next_program: f(bpf, 'void *bpf_object__next_program(void *obj, void *prev)'),
    bpf_object__next_map: f(bpf, 'void *bpf_object__next_map(void *obj, void *prev)'),
    bpf_program__name: f(bpf, 'const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f(bpf, 'const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f(bpf, 'int bpf_program__fd(void *prog)'),
    bpf_program__type: f(bpf, 'int bpf_program__type(void *prog)'),
    bpf_map__name: f(bpf, 'const char *bpf_map__name(void *map)'),
    bpf_map__fd: f(bpf, 'int bpf_map__fd(void *map)'),
    bpf_map__reuse_fd: f(bpf, 'int bpf_map__reuse_fd(void *map, int fd)'),
    bpf_map_update_elem: f(bpf, 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f(bpf, 'int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_delete_elem: f(bpf, 'int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f(bpf, 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    bpf_map_update_batch: f(
      bpf,
      'int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)',
    ),
    bpf_map_lookup_batch: f(
      bpf,
      'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)',
    ),
    bpf_map_delete_batch: f(bpf, 'int bpf_map_delete_batch(int fd, const void *keys, void *count, const void *opts)'),
    bpf_obj_pin: f(bpf, 'int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: f(bpf, 'int bpf_obj_get(const char *path)'),
    bpf_link_create: f(bpf, 'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    bpf_link_update: f(bpf, 'int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    bpf_raw_tracepoint_open: f(bpf, 'int bpf_raw_tracepoint_open(const char *name, int prog_fd)'),
    bpf_link_detach: f(bpf, 'int bpf_link_detach(int link_fd)'),
    bpf_prog_get_next_id: f(bpf, 'int bpf_prog_get_next_id(uint32_t start, void *next)'),
    bpf_map_get_next_id: f(bpf, 'int bpf_map_get_next_id(uint32_t start, void *next)'),
    bpf_link_get_next_id: f(bpf, 'int bpf_link_get_next_id(uint32_t start, void *next)'),
    bpf_prog_get_fd_by_id: f(bpf, 'int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: f(bpf, 'int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_link_get_fd_by_id: f(bpf, 'int bpf_link_get_fd_by_id(uint32_t id)'),
    bpf_btf_get_fd_by_id: f(bpf, 'int bpf_btf_get_fd_by_id(uint32_t id)'),
    bpf_obj_get_info_by_fd: f(bpf, 'int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)'),
    bpf_prog_load: f(
      bpf,
      'int bpf_prog_load(int type, const char *name, const char *license, const void *insns, size_t insn_cnt, const void *opts)',
    ),
    bpf_map_create: f(
      bpf,
      'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
    ),
    bpf_prog_test_run_opts: f(bpf, 'int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
    ring_buffer__new: f(bpf, 'void *ring_buffer__new(int map_fd, void *sample_cb, void *ctx, const void *opts)'),
    ring_buffer__add: f(bpf, 'int ring_buffer__add(void *rb, int map_fd, void *sample_cb, void *ctx)'),
    ring_buffer__consume: f(bpf, 'int ring_buffer__consume(void *rb)'),
    ring_buffer__free: f(bpf, 'void ring_buffer__free(void *rb)'),
    libbpf_num_possible_cpus: f(bpf, 'int libbpf_num_possible_cpus(void)'),
    libbpf_probe_bpf_prog_type: f(bpf, 'int libbpf_probe_bpf_prog_type(int type, const void *opts)'),
    libbpf_probe_bpf_map_type: f(bpf, 'int libbpf_probe_bpf_map_type(int type, const void *opts)'),
    libbpf_probe_bpf_helper: f(bpf, 'int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),
    libbpf_set_print: f(bpf, 'void *libbpf_set_print(void *fn)'),
    close: f(c, 'int close(int fd)'),
    fcntl: f(c, 'int fcntl(int fd, int cmd, ...)'),
    syscall: f(c, 'long syscall(long number, ...)'),
    setns: f(c, 'int setns(int fd, int nstype)'),
    mount: f(c, 'int mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data)'),
    vsnprintf: f(c, 'int vsnprintf(void *buf, size_t size, uint64_t fmt, uint64_t ap)'),
    getsockopt: f(c, 'int getsockopt(int fd, int level, int name, void *value, void *len)'),
    flock: f(c, 'int flock(int fd, int operation)'),
    socket: f(c, 'int socket(int domain, int type, int protocol)'),
    send: f(c, 'long send(int fd, const void *buf, size_t len, int flags)'),
    recv: f(c, 'long recv(int fd, void *buf, size_t len, int flags)'),
    mmap: f(c, 'void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: f(c, 'int munmap(void *addr, size_t length)'),
    sysconf: f(c, 'long sysconf(int name)'),
    errno: () => koffi.errno(),
  };
  installLibbpfPrint(native);
  return native;
}

/**
 * Routes libbpf's own messages (warnings, "failed to find BTF" and the like)
 * into a buffer instead of stderr, so they can be attached to errors and
 * logged at debug level. On x86_64 a va_list is passed as a pointer, which
 * vsnprintf accepts as is.
 */
function installLibbpfPrint(n: Native): void {
  const proto = koffi.proto('int ebpf_policy_libbpf_print(int level, uint64_t fmt, uint64_t ap)');
  const buf = Buffer.alloc(4096);
  printCallback = koffi.register((level: number, fmt: bigint, ap: bigint) => {
    const len = n.vsnprintf(buf, buf.length, fmt, ap);
    const text = buf.toString('utf8', 0, Math.max(0, Math.min(len, buf.length - 1)));
    if (libbpfLog.length > 200) libbpfLog.shift();
    libbpfLog.push(`${['warn', 'info', 'debug'][level] ?? level}: ${text.trimEnd()}`);
    return 0;
  }, koffi.pointer(proto));
  n.libbpf_set_print(printCallback);
}

/** Returns and clears what libbpf printed since the last call. */
export function drainLibbpfLog(): string[] {
  return libbpfLog.splice(0, libbpfLog.length);
}

let sampleProto: unknown;

/**
 * Registers `fn` as a libbpf `ring_buffer_sample_fn` (int (*)(void *ctx,
 * void *data, size_t size)) and returns its pointer and a way to release it.
 * `fn` gets the ctx pointer value and a copy of the sample's bytes. It must
 * not throw; its return value stops consumption when negative.
 */
export function registerSampleCallback(fn: (ctx: bigint, data: Buffer) => number): { pointer: bigint; unregister: () => void } {
  lib();
  sampleProto ??= koffi.proto('int ebpf_policy_ring_sample(void *ctx, void *data, size_t size)');
  const pointer = koffi.register(
    (ctx: bigint | null, data: bigint, size: number | bigint) => fn(ctx ?? 0n, Buffer.from(koffi.view(data, Number(size)))),
    koffi.pointer(sampleProto as never),
  ) as bigint;
  return { pointer, unregister: () => koffi.unregister(pointer) };
}

/**
 * A Buffer over `length` bytes of foreign memory at `address` (no copy). The
 * caller must stop using it before that memory goes away (e.g. munmap).
 */
export function foreignView(address: bigint, length: number): Buffer {
  const ab = koffi.view(address, length);
  return Buffer.from(ab, 0, length);
}

/** Address of a Buffer's bytes, for pointer fields inside structs we encode by hand. */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf) as bigint;
}
