/** Helpers of the reconciler's end-to-end tests: policy files, servers, clients. */
import { killAndWait, runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { computeStatuses, kindState, type ReconcileReport } from '../../src/manager.js';
import type { ObservedFilters } from '../../src/kinds/packet-filter/store.js';
import type { SteeringObserved } from '../../src/kinds/port-steering/model.js';
import type { PolicyStatus } from '../../src/reconciler/model.js';
import type { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';

/** A private policy directory (mode 0700, owned by root as the tests run). */
export class PolicyDir implements Disposable {
  /** A new private directory, or `path` (which dispose removes too). */
  constructor(readonly path = mkdtempSync(join(tmpdir(), 'ebpf-policy-test-'))) {}

  /** Writes `NAME.yaml` with one PortSteering document. */
  writeSteering(name: string, spec: { netns?: string; protocol?: string; ports: Array<number | string>; addresses?: string[]; listen: string }): string {
    const file = join(this.path, `${name}.yaml`);
    const lines = [
      'apiVersion: ebpf-policy/v1',
      'kind: PortSteering',
      'metadata:',
      `  name: ${name}`,
      'spec:',
      ...(spec.netns ? [`  netns: ${spec.netns}`] : []),
      `  protocol: ${spec.protocol ?? 'tcp'}`,
      `  ports: ${JSON.stringify(spec.ports)}`,
      ...(spec.addresses ? [`  addresses: ${JSON.stringify(spec.addresses)}`] : []),
      '  target:',
      `    listen: "${spec.listen}"`,
    ];
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
    return file;
  }

  writeRaw(name: string, text: string): string {
    const file = join(this.path, name);
    writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  [Symbol.dispose](): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Starts `python3 -m http.server PORT --bind ADDR` in the sandbox (a real server that is not ours) and waits until it answers. */
export async function startHttpServer(sandbox: NetnsSandbox, address: string, port: number): Promise<ChildProcess> {
  const child = sandbox.spawn(['python3', '-m', 'http.server', String(port), '--bind', address]);
  for (let i = 0; i < 100; i++) {
    if (curl(sandbox, address, port) === 200) return child;
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  await killAndWait(child, `http.server on ${address}:${port}`);
  throw new Error(`http.server on ${address}:${port} in ${sandbox.name} did not come up`);
}

/** HTTP status of GET http://ADDR:PORT/ with curl inside the sandbox, or 0 when the connection failed. */
export function curl(sandbox: NetnsSandbox, address: string, port: number): number {
  const host = address.includes(':') ? `[${address}]` : address;
  const r = runBounded('ip', ['netns', 'exec', sandbox.name, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${host}:${port}/`]);
  return Number(r.stdout.trim()) || 0;
}

/**
 * A client loop inside the sandbox: connect to 127.0.0.1:PORT, send an HTTP request, count answers and failures
 * (with the first reasons), until `stopFile` exists (30 s at most). `output()` is "OK FAIL REASONS" once it ended.
 */
export function connectionLoop(sandbox: NetnsSandbox, port: number, stopFile: string): { child: ChildProcess; output: () => string } {
  const child = sandbox.spawn([
    'python3',
    '-c',
    `
import socket, sys, time, os
ok = fail = 0
why = []
start = time.time()
while time.time() < start + 30 and not os.path.exists(sys.argv[2]):
    try:
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        head = c.makefile("rb").readline()
        if head.startswith(b"HTTP/1.0 200"): ok += 1
        else:
            fail += 1
            why.append(repr(head))
        c.close()
    except OSError as e:
        fail += 1
        why.append("%r at +%.2fs" % (e, time.time() - start))
print(ok, fail, ";".join(why[:5]), flush=True)
`,
    String(port),
    stopFile,
  ]);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  return { child, output: () => out.trim() };
}

/** PortSteering's observed dispatchers in a report (after its apply). */
export function steeringOf(r: ReconcileReport): SteeringObserved {
  const s = kindState(r, 'PortSteering');
  assert.ok(s && !s.observeError, `PortSteering pins could not be read: ${s?.observeError?.message}`);
  return s.observed as SteeringObserved;
}

/** PacketFilter's observed filters in a report (after its apply). */
export function filtersOf(r: ReconcileReport): ObservedFilters {
  const s = kindState(r, 'PacketFilter');
  assert.ok(s && !s.observeError, `PacketFilter pins could not be read: ${s?.observeError?.message}`);
  return s.observed as ObservedFilters;
}

/** Statuses of one kind's policies in a (dry-run) report, counters read. */
export function statusesOf(r: ReconcileReport, kind: string): PolicyStatus[] {
  return computeStatuses(r, true).filter((s) => s.kind === kind);
}
