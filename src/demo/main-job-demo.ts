/**
 * `ebpf-policy demo`: the main job on the shipped example policies, in a
 * throwaway network namespace so it touches nothing else on the machine.
 *
 * It starts a real HTTP server (python3 -m http.server) on 127.0.0.1:8080 in
 * a new namespace, copies policies/*.yaml with `spec.netns` pointed at that
 * namespace (and `spec.cgroup` at a throwaway cgroup), runs `reconcile
 * --once`, shows that the policy's extra ports now reach the server, that the
 * example packet filter drops a TCP connect to port 23 on lo and that a
 * process in the cgroup is denied the cloud metadata address (EPERM), prints
 * the status, then deletes the policies, reconciles again and checks that
 * nothing of ours is left.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { listPins, removePinTree } from '../bpf/bpffs.js';
import { cgroup2Mount } from '../bpf/cgroup.js';
import { changes, computeStatuses, DOCUMENT_KINDS, KINDS, reconcileExitCode, reconcileOnce } from '../manager.js';
import { renderAction, renderStatusText } from '../reconciler/render.js';
import { NetnsSandbox } from '../sandbox/netns-sandbox.js';
import { runBounded, sleep } from '../sandbox/bounded-wait.js';
import { PACKAGE_ROOT } from '../common/package-paths.js';

/** The shipped example policies. */
export const EXAMPLE_POLICIES = join(PACKAGE_ROOT, 'policies');

/** What the demo saw. */
export interface DemoResult {
  /** Port -> HTTP status from curl, after the reconcile (0 = connection failed). */
  steered: Record<number, number>;
  /** The same ports after the policies were removed. */
  afterCleanup: Record<number, number>;
  /** Pins left under the demo root at the end (must be none). */
  leftPins: string[];
  ok: boolean;
}

/** A TCP connect to 127.0.0.1:PORT inside the sandbox: "open", "refused", or "dropped" (no answer within 0.5 s). */
function tcpProbe(sandbox: NetnsSandbox, port: number): string {
  const py = `import socket\ns = socket.socket()\ns.settimeout(0.5)\ntry:\n  s.connect(("127.0.0.1", ${port})); print("open")\nexcept socket.timeout: print("dropped")\nexcept OSError: print("refused")`;
  return runBounded('ip', ['netns', 'exec', sandbox.name, 'python3', '-c', py]).stdout.trim();
}

/**
 * A TCP connect to the cloud metadata address from a process in `cgroup`
 * inside the sandbox: "denied (EPERM)" when a policy refuses it, else what
 * the namespace says ("unreachable": it has no route there).
 */
function metadataProbe(sandbox: NetnsSandbox, cgroup: string): string {
  const py = `import errno, socket\ns = socket.socket()\ns.settimeout(0.5)\ntry:\n  s.connect(("169.254.169.254", 80)); print("open")\nexcept socket.timeout: print("no answer")\nexcept OSError as e: print("denied (EPERM)" if e.errno == errno.EPERM else "unreachable" if e.errno == errno.ENETUNREACH else errno.errorcode.get(e.errno, "error"))`;
  return runBounded('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec ip netns exec ${sandbox.name} python3 -c '${py}'`]).stdout.trim();
}

/** Removes the demo's cgroup once its processes are gone (bounded). */
async function removeCgroup(path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await sleep(20);
    }
  }
}

function curl(sandbox: NetnsSandbox, port: number): number {
  const r = runBounded('ip', ['netns', 'exec', sandbox.name, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://127.0.0.1:${port}/`]);
  return Number(r.stdout.trim()) || 0;
}

/** Whether documents of `kind` take `spec.<field>` (per the kind's schema): the demo points a netns at its namespace, a cgroup at its cgroup. */
function kindTakes(kind: string, field: 'netns' | 'cgroup'): boolean {
  const schemaFile = DOCUMENT_KINDS.get(kind)?.schemaFile;
  if (!schemaFile) return false;
  type Node = { $ref?: string; properties?: Record<string, Node>; definitions?: Record<string, Node> };
  const schema = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'schemas', schemaFile), 'utf8')) as Node;
  const local = (n: Node | undefined): Node | undefined => (n?.$ref?.startsWith('#/definitions/') ? schema.definitions?.[n.$ref.slice(14)] : n);
  return local(schema.properties?.spec)?.properties?.[field] !== undefined;
}

/** Runs the demo; `say` gets one line per step. Cleans up in `finally`. */
export async function runMainJobDemo(say: (line: string) => void, policiesDir = EXAMPLE_POLICIES): Promise<DemoResult> {
  const root = `/sys/fs/bpf/ebpf-policy-demo-${process.pid}`;
  const work = mkdtempSync(join(tmpdir(), 'ebpf-policy-demo-'));
  const sandbox = NetnsSandbox.create('demo');
  say(`created network namespace ${sandbox.name}`);
  const cgroupName = `ebpf-policy-demo-${process.pid}`;
  const cgroup = join(cgroup2Mount(), cgroupName);
  mkdirSync(cgroup, { recursive: true });
  say(`created cgroup ${cgroup}`);
  try {
    const server = sandbox.spawn(['python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1']);
    for (let i = 0; i < 100 && curl(sandbox, 8080) !== 200; i++) await sleep(50);
    say(`python3 -m http.server (pid ${server.pid}) answers on 127.0.0.1:8080`);

    // The shipped policies, pointed at the demo namespace.
    const ports = new Set<number>([8081, 9000, 9010, 9011]);
    for (const f of readdirSync(policiesDir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
      const docs = parseAllDocuments(readFileSync(join(policiesDir, f), 'utf8'));
      // Every kind that names a namespace or a cgroup: the demo must never touch the host's.
      const pointed: string[] = [];
      for (const d of docs) {
        const kind = String(d.get('kind'));
        if (kindTakes(kind, 'netns')) {
          d.setIn(['spec', 'netns'], sandbox.path);
          pointed.push(`spec.netns: ${sandbox.path}`);
        }
        if (kindTakes(kind, 'cgroup')) {
          d.setIn(['spec', 'cgroup'], cgroupName);
          pointed.push(`spec.cgroup: ${cgroupName}`);
        }
      }
      writeFileSync(join(work, f), docs.map((d) => d.toString()).join(''), { mode: 0o644 });
      say(`policy ${join(policiesDir, f)} -> ${join(work, f)} (${[...new Set(pointed)].join(', ') || 'as is'})`);
    }
    say(`before: ${[...ports].map((p) => `:${p} -> ${curl(sandbox, p) || 'refused'}`).join(', ')}; telnet :23 -> ${tcpProbe(sandbox, 23)}; 169.254.169.254:80 from the cgroup -> ${metadataProbe(sandbox, cgroup)}`);

    say(`ebpf-policy reconcile --once --policies ${work} --bpffs-root ${root}`);
    const r = await reconcileOnce({ root, policyPaths: [work], reportDir: null, onAction: (a, e) => say(`  ${e ? 'FAILED ' : ''}${renderAction(a).replace(/\n/g, '\n  ')}`) });
    for (const p of r.load.problems) say(`  ${p.file}:${p.line}:${p.column}: ${p.severity}: ${p.message}`);
    for (const p of r.plan.problems) say(`  ${p.condition}: ${p.policy}: ${p.message}`);
    const steered = Object.fromEntries([...ports].map((p) => [p, curl(sandbox, p)]));
    const telnet = tcpProbe(sandbox, 23);
    const metadata = metadataProbe(sandbox, cgroup);
    say(`after:  ${Object.entries(steered).map(([p, s]) => `:${p} -> ${s || 'refused'}`).join(', ')}; telnet :23 -> ${telnet}; 169.254.169.254:80 from the cgroup -> ${metadata}`);

    const again = await reconcileOnce({ root, policyPaths: [work], dryRun: true, reportDir: null });
    say(`ebpf-policy plan: ${changes(again.plan).length === 0 ? 'no changes' : `${changes(again.plan).length} changes (unexpected)`}`);
    say('ebpf-policy status:');
    const statuses = computeStatuses(again, true);
    for (const line of renderStatusText(statuses, KINDS).split('\n')) say(`  ${line}`);
    // The example PacketFilter policy drops TCP to port 23 on lo; without one, the port just refuses.
    const filtersTelnet = statuses.some((st) => st.kind === 'PacketFilter');
    // The example ConnectPolicy denies the metadata address to the cgroup; without one, the namespace has no route there.
    const guardsCgroup = statuses.some((st) => st.kind === 'ConnectPolicy');

    for (const f of readdirSync(work)) rmSync(join(work, f));
    const last = await reconcileOnce({ root, policyPaths: [work], reportDir: null });
    const afterCleanup = Object.fromEntries([...ports].map((p) => [p, curl(sandbox, p)]));
    const leftPins = listPins(root);
    say(`removed the policies and reconciled: ${last.result!.applied.length} changes; ${leftPins.length} pins left; ${Object.entries(afterCleanup).map(([p, s]) => `:${p} -> ${s || 'refused'}`).join(', ')}`);
    const ok =
      reconcileExitCode(r) === 0 &&
      steered[8081] === 200 &&
      steered[9000] === 200 &&
      steered[9010] === 200 &&
      steered[9011] === 0 &&
      changes(again.plan).length === 0 &&
      telnet === (filtersTelnet ? 'dropped' : 'refused') &&
      metadata === (guardsCgroup ? 'denied (EPERM)' : 'unreachable') &&
      leftPins.length === 0 &&
      Object.values(afterCleanup).every((s) => s === 0);
    return { steered, afterCleanup, leftPins, ok };
  } finally {
    await sandbox.destroy();
    removePinTree(root);
    rmSync(work, { recursive: true, force: true });
    await removeCgroup(cgroup);
    say(`removed namespace ${sandbox.name}, cgroup ${cgroup} and ${root}`);
  }
}
