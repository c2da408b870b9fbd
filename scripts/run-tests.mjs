#!/usr/bin/env node
// Runs the whole suite (unit tests, then real-kernel tests) with node's test
// runner, then fails the run if anything of ours is left in the kernel:
// pins under /sys/fs/bpf, network namespaces, test cgroups.
//
// Nothing here can wait forever: every test file and every test in it has a
// timeout (node's --test-timeout: with one process per file it bounds each
// file as a whole, and each test that sets no bound of its own; kernel tests
// set 120 s each, see test/kernel/harness.ts), a file whose tests ended does
// not wait for stray handles (--test-force-exit), and each group of files has
// a deadline after which its whole process group is killed and the run fails
// saying so.
//
// Environment: TEST_TIMEOUT_MS (per file, default 900000), SUITE_TIMEOUT_MS
// (per group, default 1800000), TEST_FILES (a regular expression: run only
// the files whose path matches).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

if (process.getuid?.() !== 0) {
  console.error('npm test: the kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run as root');
  process.exit(1);
}

const testTimeoutMs = Number(process.env.TEST_TIMEOUT_MS ?? 900_000);
const suiteTimeoutMs = Number(process.env.SUITE_TIMEOUT_MS ?? 30 * 60_000);
const only = process.env.TEST_FILES ? new RegExp(process.env.TEST_FILES) : null;

const testFiles = (d) =>
  existsSync(d)
    ? readdirSync(d, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.test.js'))
        .sort()
        .map((f) => `${d}/${f}`)
        .filter((f) => !only || only.test(f))
    : [];

/** Runs one group of test files in its own process group; kills the group at the deadline. */
function runGroup(name, files, flags) {
  const args = ['--test', '--test-reporter=spec', `--test-timeout=${testTimeoutMs}`, '--test-force-exit', ...flags, ...files];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit', detached: true });
    const timer = setTimeout(() => {
      console.error(`\nnpm test: the ${name} tests ran past their deadline of ${suiteTimeoutMs / 1000} s; killing them`);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      resolve({ name, status: 124, seconds: (Date.now() - started) / 1000, timedOut: true });
    }, suiteTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // The group's stray processes (servers a killed test started) go with it.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // nothing left
      }
      resolve({ name, status: code ?? (signal ? 128 : 1), seconds: (Date.now() - started) / 1000, timedOut: false });
    });
  });
}

/** Pins, namespaces and cgroups of ours on the machine now (by name prefix). */
function ours() {
  const leftovers = [];
  if (existsSync('/sys/fs/bpf')) {
    for (const e of readdirSync('/sys/fs/bpf')) if (e.startsWith('ebpf-policy-')) leftovers.push({ what: `/sys/fs/bpf/${e}`, remove: ['rm', '-rf', `/sys/fs/bpf/${e}`] });
  }
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (const l of netns.split('\n')) {
    const n = l.split(' ')[0];
    if (n.startsWith('ebpf-policy-')) leftovers.push({ what: `netns ${n}`, remove: ['ip', 'netns', 'del', n] });
  }
  const cg = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' - ')[1]?.startsWith('cgroup2 '))
    ?.split(' ')[4];
  if (cg && existsSync(cg)) {
    for (const e of readdirSync(cg)) if (e.startsWith('ebpf-policy-')) leftovers.push({ what: `cgroup ${cg}/${e}`, remove: ['rmdir', `${cg}/${e}`] });
  }
  return leftovers;
}

// What existed before the run (another run's, on a developer's machine) is neither reported nor removed.
const before = new Set(ours().map((l) => l.what));

// Unit test files run in parallel. Kernel test files run one at a time: some
// check machine-wide state (e.g. every BPF program id bpftool lists), which
// another file loading programs at the same moment would disturb.
const groups = [
  ['unit', testFiles('dist/test/unit'), []],
  ['kernel', testFiles('dist/test/kernel'), ['--test-concurrency=1']],
].filter(([, files]) => files.length > 0);

const results = [];
for (const [name, files, flags] of groups) results.push(await runGroup(name, files, flags));
for (const r of results) console.error(`npm test: ${r.name} tests ${r.timedOut ? 'timed out' : r.status === 0 ? 'passed' : `failed (exit ${r.status})`} in ${r.seconds.toFixed(1)} s`);
const failed = results.find((r) => r.status !== 0);
const status = results.length === 0 ? 1 : failed ? failed.status : 0;

const leftovers = ours().filter((l) => !before.has(l.what));
if (leftovers.length) {
  console.error(`\nnpm test: the run left these behind (now removed):\n  ${leftovers.map((l) => l.what).join('\n  ')}`);
  for (const l of leftovers) spawnSync(l.remove[0], l.remove.slice(1), { timeout: 10_000 });
  process.exit(1);
}
process.exit(status);
