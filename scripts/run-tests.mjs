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

const dirs = ['dist/test/unit', 'dist/test/kernel'].filter((d) => existsSync(d));
const files = dirs.flatMap((d) =>
  readdirSync(d, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => `${d}/${f}`),
);
const run = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });

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
