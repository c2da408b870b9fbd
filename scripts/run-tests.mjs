#!/usr/bin/env node
// Runs the whole suite (unit tests, then real-kernel tests) with node's test
// runner, then fails the run if anything of ours is left in the kernel:
// pins under /sys/fs/bpf, network namespaces, test cgroups.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

if (process.getuid?.() !== 0) {
  console.error('npm test: the kernel tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); run as root');
  process.exit(1);
}

const testFiles = (d) =>
  existsSync(d)
    ? readdirSync(d, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.test.js'))
        .sort()
        .map((f) => `${d}/${f}`)
    : [];
// Unit test files run in parallel. Kernel test files run one at a time: some
// check machine-wide state (e.g. every BPF program id bpftool lists), which
// another file loading programs at the same moment would disturb.
const runs = [
  [testFiles('dist/test/unit'), []],
  [testFiles('dist/test/kernel'), ['--test-concurrency=1']],
]
  .filter(([files]) => files.length > 0)
  .map(([files, flags]) => spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...flags, ...files], { stdio: 'inherit' }));
const failed = runs.find((r) => r.status !== 0);
const run = { status: runs.length === 0 ? 1 : failed ? (failed.status ?? 1) : 0 };

const leftovers = [];
if (existsSync('/sys/fs/bpf')) {
  for (const e of readdirSync('/sys/fs/bpf')) if (e.startsWith('ebpf-policy-')) leftovers.push(`/sys/fs/bpf/${e}`);
}
const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
for (const l of netns.split('\n')) if (l.startsWith('ebpf-policy-')) leftovers.push(`netns ${l.split(' ')[0]}`);
const cg = readFileSync('/proc/self/mountinfo', 'utf8')
  .split('\n')
  .find((l) => l.split(' - ')[1]?.startsWith('cgroup2 '))
  ?.split(' ')[4];
if (cg && existsSync(cg)) for (const e of readdirSync(cg)) if (e.startsWith('ebpf-policy-test-')) leftovers.push(`cgroup ${cg}/${e}`);

if (leftovers.length) {
  console.error(`\nnpm test: the run left these behind:\n  ${leftovers.join('\n  ')}`);
  process.exit(1);
}
process.exit(run.status ?? 1);
