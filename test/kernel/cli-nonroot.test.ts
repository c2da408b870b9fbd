/**
 * The command line as an ordinary user (nobody, through setpriv): the
 * commands that touch the kernel stop at once with exit status 2 and one
 * line naming the missing capabilities, before they load anything; validate
 * needs no privileges and accepts policy files owned by the user running it
 * (a CI checkout), but not group-writable ones. Needs root to switch users.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPins } from '../../src/bpf/index.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { kernelTest } from './harness.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const NOBODY = 65534;

const POLICY = `apiVersion: ebpf-policy/v1
kind: PortSteering
metadata:
  name: web
spec:
  protocol: tcp
  ports: [8081]
  target:
    listen: "127.0.0.1:8080"
`;

/** Runs the CLI as nobody (no groups, no capabilities) in `cwd`. */
function asNobody(cwd: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const setpriv = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all', '--', process.execPath, cli, ...args];
  const r = runBounded('setpriv', setpriv, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A directory under /tmp owned by nobody, holding `policies/web.yaml` (nobody's, 0644); removed by `using`. */
function nobodysCheckout(): { path: string; policies: string; file: string } & Disposable {
  const path = mkdtempSync('/tmp/ebpf-policy-nonroot-');
  const policies = join(path, 'policies');
  const file = join(policies, 'web.yaml');
  mkdirSync(policies, { mode: 0o755 });
  writeFileSync(file, POLICY, { mode: 0o644 });
  for (const p of [path, policies, file]) chownSync(p, NOBODY, NOBODY);
  chmodSync(path, 0o755);
  return { path, policies, file, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

kernelTest('as nobody: plan, reconcile, status, destroy, events and test exit 2 with one line naming the missing capabilities', ({ pinDir }) => {
  using dir = nobodysCheckout();
  const missing = 'needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)';
  const ptrace = ", and CAP_SYS_PTRACE for PortSteering targets held by another user's process";

  const plan = asNobody(dir.path, 'plan', '--policies', dir.policies, '--bpffs-root', pinDir);
  assert.equal(plan.status, 2, plan.stderr);
  assert.equal(plan.stderr, `ebpf-policy plan: ${missing}${ptrace}\n`, 'exactly one line on stderr');
  assert.equal(plan.stdout, '');

  const runs: Array<[string, string[], boolean]> = [
    ['reconcile', ['reconcile', '--once', '--policies', dir.policies, '--bpffs-root', pinDir], true],
    ['reconcile', ['reconcile', '--policies', dir.policies, '--bpffs-root', pinDir], true], // the daemon
    ['status', ['status', '--policies', dir.policies, '--bpffs-root', pinDir], true],
    ['destroy', ['destroy', '--yes', '--bpffs-root', pinDir], false],
    ['events', ['events', '--timeout', '1', '--bpffs-root', pinDir], false],
    ['test', ['test', '--policies', dir.policies], true],
  ];
  for (const [command, args, resolvesTargets] of runs) {
    const r = asNobody(dir.path, ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, `ebpf-policy ${command}: ${missing}${resolvesTargets ? ptrace : ''}\n`, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  assert.deepEqual(listPins(pinDir), [], 'nothing was created');
});

kernelTest('as nobody: validate accepts nobody-owned policies, refuses a group-writable one', () => {
  using dir = nobodysCheckout();
  const ok = asNobody(dir.path, 'validate', '--policies', 'policies');
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.equal(ok.stdout, '');

  chmodSync(dir.file, 0o664);
  const refused = asNobody(dir.path, 'validate', '--policies', 'policies');
  assert.equal(refused.status, 1, refused.stdout + refused.stderr);
  assert.match(refused.stdout, /^policies\/web\.yaml: error: bad ownership or modes for file \/tmp\/ebpf-policy-nonroot-\w+\/policies\/web\.yaml: mode 0664 is writable by group; refusing to load policies from it: make it owned by root or you \(uid 65534\) and not writable by group or others, or pass --insecure-policy-perms$/m);
});

kernelTest('as root: validate refuses the same nobody-owned policies (the daemon as root requires root-owned files)', () => {
  using dir = nobodysCheckout();
  const r = runBounded(process.execPath, [cli, 'validate', '--policies', 'policies'], { cwd: dir.path });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^policies: error: bad ownership or modes for directory \/tmp\/ebpf-policy-nonroot-\w+\/policies: owned by uid 65534, not root; refusing to load policies from it: make it owned by root and not writable/m);
});
