/**
 * Helpers of the ConnectPolicy kernel tests: throwaway cgroups, real client
 * processes moved into them (inside a throwaway network namespace), and
 * policy documents.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Mount } from '../../src/bpf/cgroup.js';
import { runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import type { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import type { PolicyDir } from './reconcile-helpers.js';

let counter = 0;

/** A cgroup v2 directory of its own, removed (once its processes are gone) by dispose. */
export class TestCgroup implements AsyncDisposable {
  /** Path relative to the cgroup2 mount, as a policy may name it. */
  readonly name: string;
  readonly path: string;

  constructor(tag = 'cg') {
    this.name = `ebpf-policy-test-${process.pid}-${tag}-${counter++}`;
    this.path = join(cgroup2Mount(), this.name);
    mkdirSync(this.path);
  }

  /** Creates the directory again (after {@link remove}): a new cgroup with a new id. */
  create(): void {
    mkdirSync(this.path);
  }

  /** Removes the directory, waiting (bounded) until its processes are gone. */
  async remove(): Promise<void> {
    for (let i = 0; ; i++) {
      if (!existsSync(this.path)) return;
      try {
        rmdirSync(this.path);
        return;
      } catch (err) {
        if (i >= 250) throw new Error(`cgroup ${this.path} could not be removed in 5 s (processes: ${readFileSync(join(this.path, 'cgroup.procs'), 'utf8').trim()})`, { cause: err });
        await sleep(20);
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}

/** One attempt of the client: a TCP connect, a UDP connect, or a UDP sendto without connect. */
export interface Attempt {
  op: 'tcp' | 'udp-connect' | 'udp-sendto';
  /** An IPv4 or IPv6 address (IPv6 also as ::ffff:a.b.c.d). */
  host: string;
  port: number;
}

/** What the client saw: "ok", or the errno name (EPERM, ECONNREFUSED, ENETUNREACH, ...), per attempt, and its pid. */
export interface AttemptResults {
  pid: number;
  results: string[];
}

const CLIENT = String.raw`
import errno, json, os, socket, sys
out = []
for op, host, port in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    kind = socket.SOCK_STREAM if op == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.settimeout(2)
    try:
        if op == 'udp-sendto':
            s.sendto(b'x', (host, port))
        else:
            s.connect((host, port))
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__)
    finally:
        s.close()
print(json.dumps({'pid': os.getpid(), 'results': out}))
`;

/**
 * Runs the client once with `attempts`, inside `sandbox`'s network namespace,
 * in `cgroup` (moved there before it starts) or where the test runs (none).
 */
export function tryConnects(sandbox: NetnsSandbox, cgroup: TestCgroup | undefined, attempts: Attempt[]): AttemptResults {
  const args = JSON.stringify(attempts.map((a) => [a.op, a.host, a.port]));
  const cmd = ['ip', 'netns', 'exec', sandbox.name, 'python3', '-c', CLIENT, args];
  const r = cgroup
    ? runBounded('sh', ['-c', `echo $$ > ${cgroup.path}/cgroup.procs && exec "$@"`, 'sh', ...cmd], {}, 30_000)
    : runBounded(cmd[0]!, cmd.slice(1), {}, 30_000);
  assert.equal(r.status, 0, `client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as AttemptResults;
}

/** One rule of a ConnectPolicy document. */
export interface ConnectRuleSpec {
  name: string;
  action: 'allow' | 'deny';
  protocol?: 'tcp' | 'udp';
  destinations?: string[];
  ports?: Array<number | string>;
  mode?: 'enforce' | 'audit';
}

/** Writes `NAME.yaml` with one ConnectPolicy document; returns its path. */
export function writeConnectPolicy(
  dir: PolicyDir,
  name: string,
  spec: { cgroup: string; mode?: 'enforce' | 'audit'; defaultAction?: 'allow' | 'deny'; rules: ConnectRuleSpec[]; sampleRate?: number },
): string {
  const doc = {
    apiVersion: 'ebpf-policy/v1',
    kind: 'ConnectPolicy',
    metadata: { name },
    spec: {
      cgroup: spec.cgroup,
      ...(spec.mode ? { mode: spec.mode } : {}),
      ...(spec.defaultAction ? { defaultAction: spec.defaultAction } : {}),
      rules: spec.rules,
      ...(spec.sampleRate ? { events: { sampleRate: spec.sampleRate } } : {}),
    },
  };
  return dir.writeRaw(`${name}.json`, JSON.stringify(doc, null, 2));
}
