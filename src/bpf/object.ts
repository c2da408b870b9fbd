/**
 * Loading BPF ELF objects with libbpf. libbpf's `struct bpf_object` lives
 * only inside {@link loadObject}: the programs and maps come out as
 * {@link Program} and {@link BpfMap} objects owning duplicated fds, and the
 * libbpf object is closed before returning, so every fd has one owner.
 */
import { existsSync, statSync } from 'node:fs';
import { ErrnoError, LoadError } from './errors.js';
import { OwnedFd } from './fd.js';
import { BpfMap } from './map.js';
import { addressOf, drainLibbpfLog, lib, type Ptr } from './native.js';
import { Program } from './program.js';

/** Options of {@link loadObject}. */
export interface LoadOptions {
  /**
   * Existing maps to use instead of creating new ones, by map name in the
   * object (e.g. the pinned maps of a running dispatcher, so an upgraded
   * program keeps its state). libbpf checks that type and sizes match.
   */
  reuseMaps?: Record<string, BpfMap>;
  /** Bytes for the verifier log on failure (default 1 MiB). */
  logSize?: number;
}

/** Programs and maps of a loaded object. close() closes every one of them. */
export class LoadedObject implements Disposable {
  constructor(
    readonly path: string,
    readonly programs: ReadonlyMap<string, Program>,
    readonly maps: ReadonlyMap<string, BpfMap>,
  ) {}

  /** The program named `name` (its C function name). Throws Error listing the names there are. */
  program(name: string): Program {
    const p = this.programs.get(name);
    if (!p) throw new Error(`${this.path} has no program "${name}" (it has: ${[...this.programs.keys()].join(', ')})`);
    return p;
  }

  /** The map named `name`. Throws Error listing the names there are. */
  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new Error(`${this.path} has no map "${name}" (it has: ${[...this.maps.keys()].join(', ')})`);
    return m;
  }

  /** Closes every program and map fd (pins keep pinned objects alive). Idempotent. */
  close(): void {
    for (const p of this.programs.values()) p.close();
    for (const m of this.maps.values()) m.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function* iterate(next: (obj: Ptr, prev: Ptr) => Ptr, obj: Ptr): Generator<bigint> {
  let cur: Ptr = null;
  while ((cur = next(obj, cur)) !== null) yield cur;
}

/**
 * Opens and loads the BPF ELF object at `path` into the kernel.
 * Throws ErrnoError when the file cannot be opened or parsed, and LoadError
 * carrying the verifier log when the kernel rejects a program.
 */
export function loadObject(path: string, options: LoadOptions = {}): LoadedObject {
  if (!existsSync(path)) throw new ErrnoError(2, 'open BPF object', `${path} (run \`npm run build\` first?)`);
  return openAndLoad(path, options, (n, opts) => n.bpf_object__open_file(path, opts), 'bpf_object__open_file');
}

/**
 * Loads the BPF ELF object held in `bytes` (e.g. a file read once and
 * checked against a digest, so what is loaded is exactly what was checked);
 * `name` names it in errors. Throws as {@link loadObject} does.
 */
export function loadObjectBytes(bytes: Buffer, name: string, options: LoadOptions = {}): LoadedObject {
  // libbpf copies the buffer at open; the object name it derives is only used in its log.
  return openAndLoad(name, options, (n, opts) => n.bpf_object__open_mem(bytes, bytes.length, opts), 'bpf_object__open_mem');
}

function openAndLoad(path: string, options: LoadOptions, open: (n: ReturnType<typeof lib>, opts: Buffer) => Ptr, openCall: string): LoadedObject {
  const n = lib();
  const logBuf = Buffer.alloc(options.logSize ?? 1 << 20);
  const opts = Buffer.alloc(80); // struct bpf_object_open_opts, libbpf 1.1
  opts.writeBigUInt64LE(80n, 0); // sz
  opts.writeBigUInt64LE(addressOf(logBuf), 56); // kernel_log_buf
  opts.writeBigUInt64LE(BigInt(logBuf.length), 64); // kernel_log_size
  opts.writeUInt32LE(0, 72); // kernel_log_level: 0, libbpf retries with 1 on failure
  drainLibbpfLog();
  const obj = open(n, opts);
  if (obj === null) {
    const errno = n.errno();
    throw new ErrnoError(errno, openCall, path, { cause: libbpfCause() });
  }
  const programs = new Map<string, Program>();
  const maps = new Map<string, BpfMap>();
  try {
    for (const m of iterate(n.bpf_object__next_map, obj)) {
      const name = n.bpf_map__name(m);
      const reuse = options.reuseMaps?.[name];
      if (reuse) {
        const ret = n.bpf_map__reuse_fd(m, reuse.fd);
        if (ret < 0) throw new ErrnoError(-ret, 'bpf_map__reuse_fd', `map ${name} of ${path} with ${reuse.label}`);
      }
    }
    const ret = n.bpf_object__load(obj);
    if (ret < 0) {
      const log = logBuf.toString('utf8', 0, Math.max(0, logBuf.indexOf(0)));
      throw new LoadError(-ret, path, log, { cause: libbpfCause() });
    }
    for (const p of iterate(n.bpf_object__next_program, obj)) {
      const name = n.bpf_program__name(p);
      programs.set(name, new Program(OwnedFd.dupRaw(n.bpf_program__fd(p), name), `program ${name}`));
    }
    for (const m of iterate(n.bpf_object__next_map, obj)) {
      const name = n.bpf_map__name(m);
      const fd = n.bpf_map__fd(m);
      if (fd < 0) continue; // .kconfig and similar maps that were not created
      maps.set(name, new BpfMap(OwnedFd.dupRaw(fd, name), `map ${name}`));
    }
    return new LoadedObject(path, programs, maps);
  } catch (err) {
    for (const p of programs.values()) p.close();
    for (const m of maps.values()) m.close();
    throw err;
  } finally {
    n.bpf_object__close(obj);
  }
}

function libbpfCause(): Error | undefined {
  const lines = drainLibbpfLog();
  return lines.length ? new Error(`libbpf said:\n${lines.join('\n')}`) : undefined;
}

const tagCache = new Map<string, { mtimeMs: number; size: number; tags: Record<string, string> }>();

/**
 * Tags of every program in the object file at `objectPath`, by program name:
 * what a live program must have to be this object's. The kernel computes a
 * tag at load time, so the object is loaded once per file version (path,
 * mtime, size) and the answer cached for the life of the process.
 * Throws LoadError or ErrnoError as {@link loadObject} does.
 */
export function objectProgramTags(objectPath: string): Readonly<Record<string, string>> {
  const st = statSync(objectPath);
  const hit = tagCache.get(objectPath);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.tags;
  using obj = loadObject(objectPath);
  const tags = Object.fromEntries([...obj.programs].map(([name, prog]) => [name, prog.info().tag]));
  tagCache.set(objectPath, { mtimeMs: st.mtimeMs, size: st.size, tags });
  return tags;
}
