/**
 * The privilege check of the commands that touch the kernel: the pure
 * decision from an effective capability mask and uid, the parsing of
 * /proc/self/status, and the capability numbers against linux/capability.h.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  CAP,
  capabilityMask,
  isInitialUidMap,
  missingCapabilities,
  parseProcStatus,
  privilegeProblem,
  REQUIRED_CAPABILITIES,
} from '../../src/cli/privileges.js';

/** Every capability of a 6.x kernel (CapEff of a full root: 0x1ffffffffff). */
const FULL = (1n << 41n) - 1n;
/** Docker's default set: no CAP_NET_ADMIN, CAP_SYS_ADMIN or CAP_BPF. */
const DOCKER_DEFAULT = 0xa80425fbn;
const PTRACE = ", and CAP_SYS_PTRACE for PortSteering targets held by another user's process";

test('the capability numbers are those of linux/capability.h', () => {
  const header = readFileSync('/usr/include/linux/capability.h', 'utf8'); // linux-libc-dev, installed by scripts/setup.sh
  for (const [name, bit] of Object.entries(CAP)) {
    const m = new RegExp(`^#define ${name}\\s+(\\d+)\\s*$`, 'm').exec(header);
    assert.ok(m, `${name} is defined in linux/capability.h`);
    assert.equal(Number(m[1]), bit, name);
  }
});

test('root with every capability, or a user with the three, may run the commands', () => {
  assert.equal(privilegeProblem('plan', { uid: 0, capEff: FULL }), undefined);
  assert.equal(privilegeProblem('plan', { uid: 1000, capEff: capabilityMask('CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN') }), undefined);
  assert.equal(privilegeProblem('plan', { uid: 1000, capEff: capabilityMask(...REQUIRED_CAPABILITIES, 'CAP_SYS_PTRACE') }), undefined);
  // The systemd unit's set: root with only these.
  assert.equal(privilegeProblem('reconcile', { uid: 0, capEff: capabilityMask('CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE') | (1n << 2n) }), undefined);
});

test('CAP_SYS_ADMIN stands in for CAP_BPF, as in the kernel (bpf_capable), and kernels before 5.8 have no CAP_BPF', () => {
  assert.deepEqual(missingCapabilities(capabilityMask('CAP_NET_ADMIN', 'CAP_SYS_ADMIN')), []);
  const before58 = (1n << 38n) - 1n; // CapEff of root on 5.4: bits 0-37
  assert.equal(privilegeProblem('plan', { uid: 0, capEff: before58 }), undefined);
  assert.deepEqual(missingCapabilities(capabilityMask('CAP_BPF', 'CAP_NET_ADMIN')), ['CAP_SYS_ADMIN']);
});

test('an ordinary user gets one line naming every missing capability', () => {
  assert.equal(
    privilegeProblem('plan', { uid: 1000, capEff: 0n }),
    `ebpf-policy plan: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)${PTRACE}`,
  );
  assert.equal(
    privilegeProblem('status', { uid: 1000, capEff: capabilityMask('CAP_BPF', 'CAP_SYS_ADMIN') }),
    `ebpf-policy status: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_NET_ADMIN)${PTRACE}`,
  );
});

test('destroy and events resolve no targets: their line does not mention CAP_SYS_PTRACE', () => {
  for (const command of ['destroy', 'events'])
    assert.equal(
      privilegeProblem(command, { uid: 1000, capEff: capabilityMask('CAP_NET_ADMIN') }),
      `ebpf-policy ${command}: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_BPF, CAP_SYS_ADMIN)`,
    );
});

test('root without the capabilities (a container) is refused, and told why', () => {
  assert.equal(
    privilegeProblem('reconcile', { uid: 0, capEff: DOCKER_DEFAULT }),
    `ebpf-policy reconcile: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN; this process runs as root without them, e.g. in a container or under a capability bounding set)${PTRACE}`,
  );
});

test('capabilities held in a user namespace (a rootless container) do not count', () => {
  assert.equal(
    privilegeProblem('plan', { uid: 0, capEff: FULL, initialUserNamespace: false }),
    `ebpf-policy plan: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN; this process is in a user namespace, whose capabilities do not count)${PTRACE}`,
  );
  assert.equal(isInitialUidMap('         0          0 4294967295\n'), true);
  assert.equal(isInitialUidMap('         0       1000          1\n         1     100000      65536\n'), false);
  assert.equal(isInitialUidMap('         0     100000      65536\n'), false);
});

test('/proc/self/status: the effective uid and CapEff', () => {
  const status = [
    'Name:\tnode',
    'Uid:\t1000\t1001\t1001\t1001',
    'Gid:\t1000\t1000\t1000\t1000',
    'CapInh:\t0000000000000000',
    'CapPrm:\t000001ffffffffff',
    'CapEff:\t0000008000003000',
    'CapBnd:\t000001ffffffffff',
    '',
  ].join('\n');
  const creds = parseProcStatus(status);
  assert.deepEqual(creds, { uid: 1001, capEff: capabilityMask('CAP_BPF', 'CAP_NET_ADMIN') | (1n << 13n) }); // and CAP_NET_RAW
  assert.deepEqual(missingCapabilities(creds.capEff), ['CAP_SYS_ADMIN']);
  assert.equal(parseProcStatus('Name:\tx\n'), undefined);
  // This process's own status parses.
  const own = parseProcStatus(readFileSync('/proc/self/status', 'utf8'));
  assert.equal(own?.uid, process.geteuid?.());
});
