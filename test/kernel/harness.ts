/**
 * Harness of the real-kernel tests. Each test gets its own pin directory on
 * bpffs and its own network namespace, and fails when it leaves a pin, an
 * fd-owning object or a BPF/pidfd/netns fd behind. Kernel tests never skip:
 * a machine that cannot run them fails them.
 */
import { runBounded, scaled, sleep } from '../../src/sandbox/bounded-wait.js';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import { DEFAULT_REPORT_DIR, lastPassFile } from '../../src/reconciler/last-pass.js';
import { DaemonLock } from '../../src/bpf/root-lock.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeAllLive, closeAllMappings, ensureBpffs, liveFds, liveMappings, listPins, removePinTree } from '../../src/bpf/index.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';

/** What a kernel test gets. */
export interface KernelContext {
  /** Empty directory on bpffs, removed after the test. The test must unpin what it pins. */
  pinDir: string;
  /** Fresh network namespace with loopback up, deleted after the test. */
  sandbox: NetnsSandbox;
}

let counter = 0;

/** Fds that point at kernel objects we own: BPF objects, pidfds, perf events, namespaces. */
export function kernelFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of readdir itself
    }
    if (/^anon_inode:(bpf|\[pidfd\]|\[perf_event\])|^net:\[/.test(target)) out.push(`${fd} -> ${target}`);
  }
  return out.sort();
}

/** Fails unless we run as root (kernel tests need CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN). */
export function requireRoot(): void {
  assert.equal(process.getuid?.(), 0, 'kernel tests must run as root: they load BPF programs and create network namespaces');
}

/** How long one kernel test may take unless it says otherwise. */
export const KERNEL_TEST_TIMEOUT_MS = 120_000;

/**
 * Declares a kernel test with its own pin directory and namespace, checked for leaks afterwards.
 * It fails after `timeoutMs` (default {@link KERNEL_TEST_TIMEOUT_MS}); a test known to be long sets a larger bound.
 */
export function kernelTest(name: string, fn: (ctx: KernelContext) => Promise<void> | void, timeoutMs = KERNEL_TEST_TIMEOUT_MS): void {
  test(name, { timeout: scaled(timeoutMs) }, async () => {
    requireRoot();
    const before = kernelFds();
    const pinDir = `/sys/fs/bpf/ebpf-policy-test-${process.pid}-${counter++}`;
    ensureBpffs(pinDir);
    const sandbox = NetnsSandbox.create('test');
    let leftPins: string[];
    let leftObjects: string[];
    let leftMappings: string[];
    try {
      await fn({ pinDir, sandbox });
    } finally {
      await sandbox.destroy();
      leftPins = listPins(pinDir);
      removePinTree(pinDir);
      rmSync(lastPassFile(DEFAULT_REPORT_DIR, pinDir), { force: true });
      rmSync(DaemonLock.pathFor(DEFAULT_REPORT_DIR, pinDir), { force: true });
      // Report leaks, but close them so the next test starts clean.
      leftObjects = liveFds();
      closeAllLive();
      leftMappings = liveMappings();
      closeAllMappings();
    }
    assert.deepEqual(leftPins, [], `test left pins behind`);
    assert.deepEqual(leftObjects, [], `test left fd-owning objects open`);
    assert.deepEqual(leftMappings, [], `test left map mappings open`);
    assert.deepEqual(kernelFds(), before, `test leaked kernel fds`);
  });
}

/**
 * Runs `bpftool -j ARGS` and parses its JSON. Throws when bpftool fails. A
 * listing that races an object being freed (bpftool cannot open an id it just
 * listed: EAGAIN or ENOENT) is tried again, a few times.
 */
export function bpftool(...args: string[]): unknown {
  for (let attempt = 1; ; attempt++) {
    const r = runBounded('bpftool', ['-j', ...args]);
    if (r.status === 0) return JSON.parse(r.stdout || 'null');
    const transient = /can't get \w+ by id \(\d+\): (Resource temporarily unavailable|No such file or directory)/.test(r.stdout + r.stderr);
    if (!transient || attempt >= 5) throw new Error(`bpftool ${args.join(' ')} exited ${r.status}: ${r.stderr || r.stdout}`);
  }
}

/** Ids bpftool lists for `prog`, `map` or `link`. */
export function bpftoolIds(kind: 'prog' | 'map' | 'link'): Set<number> {
  const list = bpftool(kind, 'show') as Array<{ id: number }> | null;
  return new Set((list ?? []).map((o) => o.id));
}

/** Polls `cond` every 20 ms until it holds or `ms` (scaled, see TIME_SCALE) pass; returns whether it held. */
export async function eventually(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + scaled(ms);
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await sleep(20);
  }
}
