/**
 * contrib/ebpf-policy.service: systemd accepts it (`systemd-analyze verify`,
 * from the Debian package systemd, which scripts/setup.sh installs; its
 * ExecStart, /usr/local/bin/ebpf-policy, is the link setup.sh makes), and
 * its capabilities are what the commands check for (src/cli/privileges.ts),
 * each explained in a comment. No kernel needed, but like the kernel tests it
 * never skips: a machine without systemd-analyze fails it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REQUIRED_CAPABILITIES } from '../../src/cli/privileges.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';

const unitPath = fileURLToPath(new URL('../../../contrib/ebpf-policy.service', import.meta.url));

/** The unit's settings of `section`, as key -> values (a key may repeat; space-separated lists are split). */
function settings(text: string, section: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== section) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    out.set(key, [...(out.get(key) ?? []), ...value.split(/\s+/).filter(Boolean)]);
  }
  return out;
}

test('systemd-analyze verify accepts contrib/ebpf-policy.service without a warning', () => {
  const which = runBounded('sh', ['-c', 'command -v systemd-analyze']);
  assert.equal(which.status, 0, 'systemd-analyze is not installed: install the Debian package systemd (scripts/setup.sh does)');
  const r = runBounded('systemd-analyze', ['verify', unitPath], {}, 60_000);
  assert.equal(r.status, 0, `systemd-analyze verify ${unitPath} failed (ExecStart is /usr/local/bin/ebpf-policy, which scripts/setup.sh links):\n${r.stdout}${r.stderr}`);
  const aboutUs = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('ebpf-policy.service'));
  assert.deepEqual(aboutUs, [], 'no warning about the unit (an unknown or misspelt key is only a warning)');
});

test('the unit runs as root with a bounding set holding what the commands require, each capability explained', () => {
  const text = readFileSync(unitPath, 'utf8');
  const service = settings(text, 'Service');
  const user = service.get('User')?.at(-1) ?? 'root';
  const bounding = service.get('CapabilityBoundingSet') ?? [];
  assert.ok(bounding.length > 0, 'a CapabilityBoundingSet limits the daemon');
  for (const cap of [...REQUIRED_CAPABILITIES, 'CAP_SYS_PTRACE']) assert.ok(bounding.includes(cap), `CapabilityBoundingSet has ${cap}`);
  if (user === 'root' || user === '0') {
    // Root gets its bounding set as effective capabilities: ambient ones would change nothing.
    assert.equal(service.get('AmbientCapabilities'), undefined, 'no AmbientCapabilities for a root service');
    assert.match(text, /^# It runs as root, not as a user of its own/m, 'why root is documented in the unit');
  } else {
    const ambient = service.get('AmbientCapabilities') ?? [];
    for (const cap of bounding) assert.ok(ambient.includes(cap), `a non-root service needs ${cap} in AmbientCapabilities too`);
  }
  for (const cap of bounding) assert.match(text, new RegExp(`^#\\s+${cap}\\s+\\S`, 'm'), `${cap} is explained in a comment`);
  assert.deepEqual(service.get('LimitMEMLOCK'), ['infinity'], 'kernels before 5.11 charge maps to RLIMIT_MEMLOCK, raised by systemd (no CAP_SYS_RESOURCE)');
});

test('the unit starts the command with node options this node accepts', () => {
  const text = readFileSync(unitPath, 'utf8');
  const exec = settings(text, 'Service').get('ExecStart') ?? [];
  assert.equal(exec[0], '/usr/bin/env', 'ExecStart runs node through /usr/bin/env, as the command\'s own #! line does');
  assert.equal(exec[1], 'node');
  const options = exec.slice(2, exec.findIndex((w, i) => i >= 2 && !w.startsWith('--')));
  assert.ok(options.length > 0, `node options before the command in ExecStart=${exec.join(' ')}`);
  assert.match(exec[2 + options.length] ?? '', /\/ebpf-policy$/, 'then the command');
  const r = runBounded(process.execPath, [...options, '-e', '0']);
  assert.equal(r.status, 0, `node ${options.join(' ')} is refused:\n${r.stderr}`);
  assert.equal(r.stderr, '', `node warns about ${options.join(' ')}`);
});
