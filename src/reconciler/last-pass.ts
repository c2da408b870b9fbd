/**
 * The outcome of the last pass that changed the kernel (or tried to): which
 * actions failed, with their operation and errno, and every policy's
 * conditions with their last transition times. It is a report, not state:
 * nothing is planned from it. `status` in another process reads it, so a
 * failure is shown as `Failed` with its reason until a later pass succeeds;
 * transition times survive between passes.
 *
 * It lives outside bpffs (which holds only pins), under /run/ebpf-policy by
 * default: one JSON file per pin root, replaced atomically by each pass, gone
 * at reboot like the kernel state it describes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FailedAction } from './apply.js';
import type { Condition } from './model.js';

/** Where last-pass reports live unless told otherwise. */
export const DEFAULT_REPORT_DIR = '/run/ebpf-policy';

/** A failed action as remembered. */
export interface RecordedFailure {
  /** The policy kind that planned it. */
  kind: string;
  policy: string | null;
  domain: string | null;
  object: string;
  /** The plan's operation, e.g. `writeFilterRules`. */
  operation: string;
  /** The failing system call or library function, and its errno name, when the error says. */
  syscall: string | null;
  errno: string | null;
  message: string;
  /** ISO 8601. */
  at: string;
}

/** The last pass as remembered. */
export interface LastPass {
  v: 1;
  root: string;
  finishedAt: string;
  failures: RecordedFailure[];
  /** Conditions per policy, keyed `KIND/NAME`. */
  conditions: Record<string, Condition[]>;
}

/** The report file of pin root `root` in `dir`. */
export function lastPassFile(dir: string, root: string): string {
  return join(dir, `last-pass-${createHash('sha256').update(root).digest('hex').slice(0, 16)}.json`);
}

/** Reads the last pass of `root`, or undefined when there is none (or it belongs to another root, or is unreadable). */
export function readLastPass(dir: string, root: string): LastPass | undefined {
  const file = lastPassFile(dir, root);
  try {
    // The report is replaced by a rename, so the same inode, size and change time mean the same bytes: parsed once (thousands of policies' conditions).
    const stamp = stampOf(file);
    const known = lastPassRead.get(file);
    if (known !== undefined && known.stamp === stamp) return known.pass;
    const r = JSON.parse(readFileSync(file, 'utf8')) as LastPass;
    const pass = r.v === 1 && r.root === root && Array.isArray(r.failures) ? r : undefined;
    lastPassRead.clear();
    lastPassRead.set(file, { stamp, pass });
    return pass;
  } catch {
    return undefined;
  }
}

function stampOf(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** The last report read or written, by file, with the stat it was read at (its objects are never mutated). */
const lastPassRead = new Map<string, { stamp: string; pass: LastPass | undefined }>();

/** Replaces the last-pass report of `pass.root` atomically (write, then rename). Throws on I/O errors. */
export function writeLastPass(dir: string, pass: LastPass): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = lastPassFile(dir, pass.root);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(pass, null, 1)}\n`, { mode: 0o644 });
  renameSync(tmp, file);
  lastPassRead.delete(file);
}

interface ErrnoLike {
  operation?: unknown;
  code?: unknown;
  cause?: unknown;
}

/** The first errno-carrying error in `err`'s cause chain: its operation and errno name. */
function errnoOf(err: unknown): { syscall: string | null; errno: string | null } {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as ErrnoLike).cause, depth++) {
    const x = e as ErrnoLike;
    if (typeof x.code === 'string' && /^E[A-Z0-9_]+$|^LIBBPF_ERRNO/.test(x.code))
      return { syscall: typeof x.operation === 'string' ? x.operation : null, errno: x.code };
  }
  return { syscall: null, errno: null };
}

/** A failed action as it is remembered. */
export function recordFailure(f: FailedAction, at: string): RecordedFailure {
  return {
    kind: f.action.owner ?? '',
    policy: f.action.policy ?? null,
    domain: f.action.domain ?? null,
    object: f.action.object,
    operation: f.action.op.type,
    ...errnoOf(f.error),
    message: f.error.message,
    at,
  };
}

/** How a remembered failure reads in a condition message. */
export function describeFailure(f: RecordedFailure): string {
  return `${f.object}: ${f.operation} failed${f.errno ? ` (${f.syscall ? `${f.syscall}: ` : ''}${f.errno})` : ''} at ${f.at}: ${f.message}`;
}
