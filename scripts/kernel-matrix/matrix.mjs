#!/usr/bin/env node
// The Debian kernel matrix (`npm run test:kernels`): runs the compatibility
// checks of checks.mjs natively on this machine's kernel and, for each Debian
// kernel of KERNELS, inside qemu (TCG) booted on that kernel with this
// machine's / shared read-only over virtio-9p under a tmpfs overlay, so the
// guest runs the same node, libbpf, iproute2 and checkout. Prints a matrix
// kernel x check with the failing tests and their errors. See docs/kernels.md.
//
// Usage: node scripts/kernel-matrix/matrix.mjs [--kernels host,6.1,6.12] [--checks REGEX]
//          [--package 6.1=linux-image-6.1.0-47-amd64-unsigned] [--parallel N (VMs at once, default 2)]
//          [--command NAME=SHELL-COMMAND]...   (ad hoc checks instead of checks.mjs, e.g. to debug one test)
// Environment: KERNEL_MATRIX_CACHE (default /var/cache/ebpf-policy-kernels),
//   KERNEL_MATRIX_OUT (logs of the last run, default /tmp/ebpf-policy-kernel-matrix),
//   KERNEL_MATRIX_VM_MEMORY (MiB, default 3072), KERNEL_MATRIX_VM_CPUS (default 2),
//   KERNEL_MATRIX_VM_CPU_MODEL (qemu -cpu, default max), KERNEL_MATRIX_TIME_SCALE (multiplier
//   of the tests' waits in the VMs, default 10), KERNEL_MATRIX_DEADLINE_SEC (the whole run, default 840).
//
// Every wait is bounded: each check has its own timeout inside the guest, each
// VM runs under `timeout` (the sum of its checks' timeouts plus boot time) and
// is killed and reported as a failure when it does not power off.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checks as allChecks } from './checks.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHECKOUT = resolve(HERE, '../..');
const CACHE = process.env.KERNEL_MATRIX_CACHE ?? '/var/cache/ebpf-policy-kernels';
const OUT = process.env.KERNEL_MATRIX_OUT ?? '/tmp/ebpf-policy-kernel-matrix';
const VM_MEMORY = Number(process.env.KERNEL_MATRIX_VM_MEMORY ?? 3072);
const VM_CPUS = Number(process.env.KERNEL_MATRIX_VM_CPUS ?? 2);
const VM_CPU_MODEL = process.env.KERNEL_MATRIX_VM_CPU_MODEL ?? 'max';
/** Seconds a VM may take to boot and set up before the first check starts. */
const BOOT_ALLOWANCE_SEC = 120;
/**
 * Bounds and pauses of the checks are multiplied by this in the VMs
 * (EBPF_POLICY_TIME_SCALE, see src/sandbox/bounded-wait.ts): TCG runs node
 * 10 to 30 times slower than this machine.
 */
const VM_TIME_SCALE = Number(process.env.KERNEL_MATRIX_TIME_SCALE ?? 10);
/** The whole run ends by then: a VM still running is killed and reported (default 14 min). */
const DEADLINE_SEC = Number(process.env.KERNEL_MATRIX_DEADLINE_SEC ?? 14 * 60);
const T0 = Date.now();
const remainingSec = () => Math.max(10, Math.floor(DEADLINE_SEC - (Date.now() - T0) / 1000));

/**
 * The matrix. `packagePattern` matches the Debian package names of a kernel
 * line; the newest (by the numbers captured in the name) is used. `backports`
 * says where else to look when the configured sources have none.
 */
export const KERNELS = [
  { id: 'host', label: 'this machine', native: true },
  { id: '6.1', label: 'Debian 12 (bookworm)', packagePattern: /^linux-image-6\.1\.0-(\d+)-amd64-unsigned$/ },
  { id: '6.12', label: 'Debian 12 backports', packagePattern: /^linux-image-6\.12\.(\d+)\+deb12-amd64-unsigned$/, backports: true },
];

/** Modules the initramfs loads (with their dependencies) to reach the 9p root and the overlay. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
/** Modules the guest loads with modprobe before the checks (others load on demand). */
const PRELOAD_MODULES = ['veth', 'sch_ingress', 'cls_bpf', 'act_bpf'];

const log = (...a) => console.error('kernel-matrix:', ...a);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return r;
}

function must(cmd, args, opts = {}) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

function parseArgs(argv) {
  const o = { kernels: null, checks: null, packages: {}, parallel: 2, commands: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--kernels') o.kernels = val().split(',');
    else if (a === '--checks') o.checks = new RegExp(val());
    else if (a === '--package') {
      const [k, p] = val().split('=');
      o.packages[k] = p;
    } else if (a === '--command') {
      const v = val();
      const eq = v.indexOf('=');
      if (eq <= 0) throw new Error('--command wants NAME=SHELL-COMMAND');
      o.commands.push({ name: v.slice(0, eq), command: v.slice(eq + 1), timeoutSec: 600, tap: /node --test/.test(v) });
    } else if (a === '--parallel') o.parallel = Math.max(1, Number(val()));
    else if (a === '-h' || a === '--help') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 18).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------- packages

function numbersOf(name, pattern) {
  return (pattern.exec(name) ?? []).slice(1).map(Number);
}

function newest(names, pattern) {
  const cmp = (a, b) => {
    const x = numbersOf(a, pattern);
    const y = numbersOf(b, pattern);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  };
  return names.filter((n) => pattern.test(n)).sort(cmp).at(-1);
}

let aptUpdated = false;
function aptUpdate() {
  if (aptUpdated) return;
  log('apt-get update');
  must('timeout', ['600', 'apt-get', 'update', '-qq']);
  aptUpdated = true;
}

/** Adds bookworm-backports (same mirror as the configured Debian sources) when no source names it. */
function ensureBackports() {
  const dir = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [])].filter(
    (f) => existsSync(f) && /\.(list|sources)$|sources\.list$/.test(f),
  );
  const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');
  if (/bookworm-backports/.test(text)) return false;
  const mirror = /URIs:\s*(\S+\/debian)\s*$/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\s/m.exec(text)?.[1] ?? 'http://deb.debian.org/debian';
  const file = join(dir, 'ebpf-policy-bookworm-backports.sources');
  log(`adding bookworm-backports (${mirror}) in ${file}`);
  writeFileSync(
    file,
    `# Added by ebpf-policy's scripts/kernel-matrix for the Debian backports kernels.\nTypes: deb\nURIs: ${mirror}\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  );
  aptUpdated = false;
  aptUpdate();
  return true;
}

function cachedPackages(pattern) {
  return existsSync(CACHE) ? readdirSync(CACHE).filter((d) => pattern.test(d) && existsSync(join(CACHE, d, '.extracted'))) : [];
}

/** The package to use for a kernel line: --package, else the newest apt knows, else the newest cached. */
function resolvePackage(kernel, override) {
  if (override) return override;
  const known = () => run('apt-cache', ['pkgnames', 'linux-image-']).stdout.split('\n');
  let pkg = newest(known(), kernel.packagePattern);
  if (!pkg && kernel.backports && ensureBackports()) pkg = newest(known(), kernel.packagePattern);
  if (!pkg) {
    aptUpdate();
    pkg = newest(known(), kernel.packagePattern);
  }
  const cached = newest(cachedPackages(kernel.packagePattern), kernel.packagePattern);
  if (!pkg && cached) {
    log(`${kernel.id}: apt knows no ${kernel.packagePattern}; using the cached ${cached}`);
    return cached;
  }
  if (!pkg) throw new Error(`no Debian package matches ${kernel.packagePattern} (apt-cache pkgnames linux-image-)`);
  return pkg;
}

/** Downloads and extracts the package into CACHE/<package>/ unless already there. Returns the kernel's files. */
function fetchKernel(pkg) {
  const dir = join(CACHE, pkg);
  const root = join(dir, 'root');
  if (!existsSync(join(dir, '.extracted'))) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith('.deb')) rmSync(join(dir, f));
    const download = () => run('timeout', ['600', 'apt-get', 'download', '-o', 'APT::Sandbox::User=root', pkg], { cwd: dir });
    log(`downloading ${pkg}`);
    let r = download();
    if (r.status !== 0) {
      aptUpdate();
      r = download();
    }
    if (r.status !== 0) throw new Error(`apt-get download ${pkg}: ${(r.stderr || r.stdout).trim()}`);
    const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
    rmSync(root, { recursive: true, force: true });
    must('dpkg-deb', ['-x', join(dir, deb), root]);
    const kver = readdirSync(join(root, 'lib/modules'))[0];
    must('depmod', ['-b', root, kver]);
    writeFileSync(join(dir, '.extracted'), `${deb}\n`);
  }
  const kver = readdirSync(join(root, 'lib/modules'))[0];
  const deb = readFileSync(join(dir, '.extracted'), 'utf8').trim();
  return { pkg, dir, root, kver, deb, vmlinuz: join(root, 'boot', `vmlinuz-${kver}`), moddir: join(root, 'lib/modules', kver) };
}

// ---------------------------------------------------------------- initramfs

/** Module files of `names` and their dependencies, dependencies first (from modules.dep). */
function moduleOrder(moddir, names) {
  const deps = new Map();
  for (const line of readFileSync(join(moddir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod) deps.set(mod, rest.trim() ? rest.trim().split(/\s+/) : []);
  }
  const builtin = new Set(
    readFileSync(join(moddir, 'modules.builtin'), 'utf8')
      .split('\n')
      .map((p) => modName(p)),
  );
  const byName = new Map([...deps.keys()].map((p) => [modName(p), p]));
  const order = [];
  const visit = (path) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const n of names) {
    const key = n.replace(/-/g, '_');
    if (byName.has(key)) visit(byName.get(key));
    else if (!builtin.has(key)) throw new Error(`module ${n} is neither built in nor in modules.dep of ${moddir}`);
  }
  return order;
}

function modName(path) {
  return basename(path).replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replace(/-/g, '_');
}

/** Builds (or reuses) the initramfs of a kernel: busybox-static, /init, the modules decompressed. */
function buildInitramfs(k) {
  const init = readFileSync(join(HERE, 'initramfs-init.sh'));
  const busybox = '/bin/busybox';
  const order = moduleOrder(k.moddir, INITRAMFS_MODULES);
  const hash = createHash('sha256').update(init).update(readFileSync(busybox)).update(order.join('\n')).digest('hex').slice(0, 16);
  const out = join(k.dir, `initramfs-${hash}.cpio`);
  if (existsSync(out)) return out;
  log(`${k.kver}: building the initramfs (${order.length} modules)`);
  const stage = join(k.dir, 'initramfs-stage');
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'modules', 'dev', 'proc', 'sys']) mkdirSync(join(stage, d), { recursive: true });
  copyFileSync(busybox, join(stage, 'bin/busybox'));
  chmodSync(join(stage, 'bin/busybox'), 0o755);
  writeFileSync(join(stage, 'init'), init, { mode: 0o755 });
  const names = [];
  for (const rel of order) {
    const src = join(k.moddir, rel);
    const name = modName(rel);
    const dst = join(stage, 'modules', `${name}.ko`);
    if (rel.endsWith('.xz')) writeFileSync(dst, must('xz', ['-dc', src], { encoding: 'buffer' }));
    else if (rel.endsWith('.zst')) writeFileSync(dst, must('zstd', ['-dc', src], { encoding: 'buffer' }));
    else copyFileSync(src, dst);
    names.push(name);
  }
  writeFileSync(join(stage, 'modules/order'), names.join('\n') + '\n');
  const list = must('find', ['.', '-mindepth', '1'], { cwd: stage });
  const r = spawnSync('sh', ['-c', `busybox cpio -o -H newc -R 0:0 > '${out}.tmp'`], { cwd: stage, input: list });
  if (r.status !== 0) throw new Error(`cpio: ${r.stderr}`);
  must('mv', [`${out}.tmp`, out]);
  for (const f of readdirSync(k.dir)) if (/^initramfs-.*\.cpio$/.test(f) && join(k.dir, f) !== out) rmSync(join(k.dir, f));
  rmSync(stage, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------- running

function fileId(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * The guest's PATH: this machine's, with the directory of the python3 it
 * resolves to in front. Version-manager shims (pyenv) are shell scripts that
 * fork a dozen times per start: about 0.1 s here, 10 s under TCG; the
 * interpreter they pick is the same.
 */
function guestPath() {
  const path = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const r = run('python3', ['-c', 'import sys; print(sys.executable)']);
  const dir = r.status === 0 && r.stdout.trim() ? dirname(r.stdout.trim()) : '';
  return dir && !path.split(':').slice(0, 1).includes(dir) ? `${dir}:${path}` : path;
}

/** Writes the job directory: checks.tsv, env, the guest scripts; results/ receives the outcomes. */
function writeJob(jobDir, checks, extraEnv) {
  rmSync(jobDir, { recursive: true, force: true });
  mkdirSync(join(jobDir, 'results'), { recursive: true });
  writeFileSync(join(jobDir, 'checks.tsv'), checks.map((c) => `${fileId(c.name)}\t${c.timeoutSec}\t${c.command}\n`).join(''));
  for (const f of ['guest.sh', 'run-checks.sh']) {
    copyFileSync(join(HERE, f), join(jobDir, f));
    chmodSync(join(jobDir, f), 0o755);
  }
  const env = {
    PATH: guestPath(),
    HOME: process.env.HOME ?? '/root',
    LANG: process.env.LANG ?? 'C.UTF-8',
    CHECKOUT,
    ...extraEnv,
  };
  writeFileSync(join(jobDir, 'env'), Object.entries(env).map(([k, v]) => `${k}='${String(v).replace(/'/g, `'\\''`)}'\n`).join(''));
}

/** Runs a command with a hard deadline, streaming its output to `logFile`; marker lines go to `onLine`. */
function runLogged(cmd, args, { cwd, logFile, deadlineSec, onLine }) {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    const logStream = createWriteStream(logFile);
    // timeout(1) is the deadline; -k adds SIGKILL for a process that ignores SIGTERM (qemu does not, but be sure).
    const child = spawn('timeout', ['-k', '15', String(deadlineSec), cmd, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    const onData = (d) => {
      logStream.write(d);
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        onLine?.(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code, signal) => {
      logStream.end();
      resolvePromise({ code: code ?? 128, signal, timedOut: code === 124 || code === 137, seconds: (Date.now() - started) / 1000 });
    });
  });
}

function progress(kernelId) {
  return (line) => {
    const m = /^(KM-(?:BEGIN|END|READY|DONE|FATAL)\b.*)$/.exec(line.replace(/^.*?(?=KM-)/, ''));
    if (m) log(`[${kernelId}] ${m[1]}`);
  };
}

async function runNative(kernel, checks, outDir) {
  const jobDir = join(outDir, 'job');
  writeJob(jobDir, checks, {});
  const deadline = Math.min(remainingSec(), checks.reduce((s, c) => s + c.timeoutSec + 15, 30));
  const r = await runLogged('bash', [join(jobDir, 'run-checks.sh'), join(jobDir, 'checks.tsv'), join(jobDir, 'results')], {
    cwd: CHECKOUT,
    logFile: join(outDir, 'console.log'),
    deadlineSec: deadline,
    onLine: progress(kernel.id),
  });
  return { ...r, kver: run('uname', ['-r']).stdout.trim(), resultsDir: join(jobDir, 'results') };
}

async function runVm(kernel, k, initramfs, checks, outDir) {
  const jobDir = join(outDir, 'job');
  writeJob(jobDir, checks, {
    KVER: k.kver,
    MODDIR: k.moddir,
    PRELOAD_MODULES: PRELOAD_MODULES.join(' '),
    EBPF_POLICY_TIME_SCALE: VM_TIME_SCALE,
    KM_TEST_TIMEOUT_MS: Math.round(Math.min(120_000 * VM_TIME_SCALE, 400_000)),
  });
  const deadline = Math.min(remainingSec(), checks.reduce((s, c) => s + c.timeoutSec + 15, BOOT_ALLOWANCE_SEC));
  const args = [
    '-accel', 'tcg', '-cpu', VM_CPU_MODEL, '-smp', String(VM_CPUS), '-m', String(VM_MEMORY),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-nic', 'none',
    '-kernel', k.vmlinuz, '-initrd', initramfs,
    '-append', 'console=ttyS0 panic=-1 oops=panic quiet loglevel=4',
    '-virtfs', 'local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${jobDir},mount_tag=job,security_model=none,multidevs=remap`,
  ];
  const r = await runLogged('qemu-system-x86_64', args, { cwd: outDir, logFile: join(outDir, 'console.log'), deadlineSec: deadline, onLine: progress(kernel.id) });
  const consoleText = readFileSync(join(outDir, 'console.log'), 'utf8');
  return { ...r, kver: k.kver, pkg: k.pkg, deb: k.deb, resultsDir: join(jobDir, 'results'), poweredOff: /KM-POWEROFF/.test(consoleText), console: consoleText };
}

// ---------------------------------------------------------------- results

/** Failing tests of node's TAP output: name and the first lines of the error. */
function tapFailures(text) {
  const lines = text.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^not ok \d+ - (.*)$/.exec(lines[i]);
    if (!m) continue;
    let err = '';
    for (let j = i + 1; j < lines.length && !/^(ok|not ok) \d+/.test(lines[j]) && !/^# Subtest/.test(lines[j]); j++) {
      const e = /^(\s+)error: (.*)$/.exec(lines[j]);
      if (!e) continue;
      if (e[2] === '|-' || e[2] === '|' || e[2] === '>-') {
        const body = [];
        for (let k = j + 1; k < lines.length && /^\s{4,}/.test(lines[k]) && body.length < 4; k++) if (lines[k].trim()) body.push(lines[k].trim());
        err = body.join(' / ');
      } else err = e[2].replace(/^'|'$/g, '');
      break;
    }
    out.push({ test: m[1], error: err });
  }
  return out;
}

function tapCounts(text) {
  const n = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { tests: n('tests'), pass: n('pass'), fail: n('fail') };
}

function collect(checks, resultsDir, runInfo) {
  return checks.map((c) => {
    const id = fileId(c.name);
    const rcFile = join(resultsDir, `${id}.rc`);
    const outFile = join(resultsDir, `${id}.out`);
    const output = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
    if (!existsSync(rcFile)) {
      const why = runInfo.timedOut ? `the VM ran past its deadline and was killed` : `the ${runInfo.native ? 'runner' : 'VM'} stopped (exit ${runInfo.code})`;
      return { name: c.name, status: 'not run', seconds: 0, failures: [], error: output ? `${why}; partial output: ${lastLines(output, 3)}` : why };
    }
    const [rc, ms] = readFileSync(rcFile, 'utf8').trim().split(/\s+/).map(Number);
    const status = rc === 0 ? 'pass' : rc === 124 || rc === 137 ? 'timeout' : 'fail';
    const failures = c.tap ? tapFailures(output) : [];
    const counts = c.tap ? tapCounts(output) : undefined;
    const error = status === 'pass' ? '' : status === 'timeout' ? `killed after ${c.timeoutSec} s` : failures.length ? '' : lastLines(output, 4);
    return { name: c.name, status, rc, seconds: ms / 1000, failures, counts, error };
  });
}

/** The `# verifier-report {json}` lines the compatibility suite printed (one per program). */
function verifierLines(resultsDir) {
  const out = [];
  if (!existsSync(resultsDir)) return out;
  for (const f of readdirSync(resultsDir).filter((n) => n.endsWith('.out')))
    for (const m of readFileSync(join(resultsDir, f), 'utf8').matchAll(/# verifier-report (\{.*\})/g)) {
      try {
        out.push(JSON.parse(m[1]));
      } catch {
        // a line cut short: left out
      }
    }
  return out;
}

/** The verifier report: per program and kernel, verified instructions, JIT size, and the object's load time. */
function printVerifierReport(columns) {
  const programs = [...new Set(columns.flatMap((c) => (c.verifier ?? []).map((v) => v.program)))].sort();
  if (programs.length === 0) return;
  const head = ['program', ...columns.map((c) => `${c.kernel.id} (${c.kver ?? '?'})`)];
  const rows = programs.map((p) => [
    p,
    ...columns.map((c) => {
      const v = (c.verifier ?? []).find((x) => x.program === p);
      return v ? `${v.verifiedInsns} insns, JIT ${v.jitedBytes} B, load ${v.objectLoadMs} ms` : '-';
    }),
  ]);
  console.log('\nverifier report (verified instructions, JIT-compiled size, load time of the whole object):\n');
  console.log(`| ${head.join(' | ')} |`);
  console.log(`| ${head.map(() => '---').join(' | ')} |`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

/** The README's table of supported kernels, from the compatibility suite's results: each kind and hook, ✓ (and how it attached) or why not. */
function printSupportTable(columns) {
  const rows = columns.filter((c) => c.compatOut);
  if (rows.length === 0) return;
  const result = (out, prefix) => {
    const m = out.match(new RegExp(`^(ok|not ok) \\d+ - ${prefix}.*$`, 'm'));
    return m ? m[1] === 'ok' : undefined;
  };
  const attached = (out) => Object.fromEntries((out.match(/# filters attached: (.*)/)?.[1] ?? '').split(' ').filter(Boolean).map((x) => x.split(':')));
  console.log('\nsupported kernels (from the compatibility suite):\n');
  console.log('| kernel | shipped objects load | PortSteering (TCP, UDP) | PacketFilter XDP | PacketFilter tc ingress | PacketFilter tc egress | ConnectPolicy (connect, sendmsg, v4/v6) | SyscallCounter | Program (example XDP counter, upgrade) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const c of rows) {
    const out = c.compatOut;
    const mark = (ok, how = '') => (ok === undefined ? 'not run' : ok ? `✓${how ? ` (${how})` : ''}` : '✗ (see the matrix)');
    const objects = result(out, 'compat: every shipped object');
    const steer = result(out, 'compat: PortSteering');
    const filter = result(out, 'compat: PacketFilter');
    const connect = result(out, 'compat: ConnectPolicy');
    const counter = result(out, 'compat: SyscallCounter');
    const program = result(out, 'compat: Program');
    const a = attached(out);
    console.log(`| ${c.kver ?? c.kernel.id} | ${mark(objects)} | ${mark(steer)} | ${mark(filter, a.xdp)} | ${mark(filter, a['tc-ingress'])} | ${mark(filter, a['tc-egress'])} | ${mark(connect)} | ${mark(counter)} | ${mark(program)} |`);
  }
}

function lastLines(text, n) {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join(' / ')
    .slice(0, 600);
}

function cell(r) {
  if (!r) return '-';
  if (r.status === 'pass') return `pass ${r.seconds.toFixed(0)}s${r.counts && !Number.isNaN(r.counts.tests) ? ` (${r.counts.pass}/${r.counts.tests})` : ''}`;
  if (r.status === 'fail' && r.counts && !Number.isNaN(r.counts.tests)) return `FAIL ${r.counts.fail}/${r.counts.tests}`;
  return r.status.toUpperCase();
}

function printMatrix(columns, checks) {
  const header = ['check', ...columns.map((c) => `${c.kernel.id} (${c.kver ?? '?'})`)];
  const rows = checks.map((c) => [c.name, ...columns.map((col) => cell(col.results?.find((r) => r.name === c.name)))]);
  rows.push(['(run)', ...columns.map((c) => `${c.seconds?.toFixed(0) ?? '?'}s${c.note ? ` ${c.note}` : ''}`)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r) => '| ' + r.map((v, i) => v.padEnd(widths[i])).join(' | ') + ' |';
  console.log('');
  console.log(fmt(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(fmt(r));
  const failures = [];
  for (const col of columns) {
    if (col.error) failures.push(`[${col.kernel.id}] ${col.error}`);
    for (const r of col.results ?? []) {
      if (r.status === 'pass') continue;
      if (r.failures.length === 0) failures.push(`[${col.kernel.id}] ${r.name}: ${r.status}: ${r.error}`);
      for (const f of r.failures) failures.push(`[${col.kernel.id}] ${r.name}: "${f.test}": ${f.error}`);
    }
  }
  if (failures.length) {
    console.log('\nFailures:');
    for (const f of failures) console.log(`  ${f}`);
  }
}

// ---------------------------------------------------------------- leftovers (host only)

function ourLeftovers() {
  const pins = existsSync('/sys/fs/bpf') ? readdirSync('/sys/fs/bpf').filter((e) => e.startsWith('ebpf-policy-')) : [];
  const ns = run('ip', ['netns', 'list']).stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('ebpf-policy-'));
  return new Set([...pins.map((p) => `/sys/fs/bpf/${p}`), ...ns.map((n) => `netns ${n}`)]);
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: the checks load BPF programs, and the matrix installs packages and boots VMs');
  if (!existsSync(join(CHECKOUT, 'dist/src/cli/main.js')) || !existsSync(join(CHECKOUT, 'build/bpf'))) throw new Error('build first: npm run build');
  const kernels = KERNELS.filter((k) => !opts.kernels || opts.kernels.includes(k.id));
  if (kernels.length === 0) throw new Error(`no kernel matches --kernels; known: ${KERNELS.map((k) => k.id).join(', ')}`);
  const checks = (opts.commands.length ? opts.commands : allChecks(CHECKOUT)).filter((c) => !opts.checks || opts.checks.test(c.name));
  if (checks.length === 0) throw new Error('no check matches --checks');
  const t0 = T0;

  if (kernels.some((k) => !k.native)) must('bash', [join(HERE, 'install-deps.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });

  // Prepare every VM kernel first (download, extract, initramfs; cached between runs).
  const columns = [];
  for (const kernel of kernels) {
    const col = { kernel, outDir: join(OUT, kernel.id) };
    mkdirSync(col.outDir, { recursive: true });
    if (!kernel.native) {
      const tp = Date.now();
      try {
        col.k = fetchKernel(resolvePackage(kernel, opts.packages[kernel.id]));
        col.initramfs = buildInitramfs(col.k);
        col.kver = col.k.kver;
        col.prepareSeconds = (Date.now() - tp) / 1000;
        log(`${kernel.id}: ${col.k.deb} -> ${col.k.kver} (prepared in ${col.prepareSeconds.toFixed(1)} s)`);
      } catch (err) {
        col.error = `preparing the kernel failed: ${err.message}`;
        log(`${kernel.id}: ${col.error}`);
      }
    }
    columns.push(col);
  }
  const prepared = (Date.now() - t0) / 1000;

  const runColumn = async (col) => {
    if (col.error) return;
    const { kernel } = col;
    log(`${kernel.id}: running ${checks.length} checks${kernel.native ? ' natively' : ` in qemu on ${col.k.kver}`}`);
    const before = kernel.native ? ourLeftovers() : undefined;
    const r = kernel.native ? await runNative(kernel, checks, col.outDir) : await runVm(kernel, col.k, col.initramfs, checks, col.outDir);
    col.kver = r.kver;
    col.seconds = r.seconds;
    col.results = collect(checks, r.resultsDir, { ...r, native: kernel.native });
    col.verifier = verifierLines(r.resultsDir);
    col.compatOut = existsSync(join(r.resultsDir, 'compat.out')) ? readFileSync(join(r.resultsDir, 'compat.out'), 'utf8') : '';
    if (!kernel.native && !r.poweredOff) {
      col.note = r.timedOut ? '(VM killed at its deadline)' : '(VM did not power off)';
      // eslint-disable-next-line no-control-regex -- ANSI escapes of the serial console
      col.error = `${col.note}; console tail: ${lastLines(r.console.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''), 8)}`;
    }
    if (before) {
      const left = [...ourLeftovers()].filter((x) => !before.has(x));
      if (left.length) col.error = `left behind on the host: ${left.join(', ')}`;
    }
    writeFileSync(join(col.outDir, 'results.json'), JSON.stringify({ kernel: kernel.id, kver: col.kver, seconds: col.seconds, results: col.results }, null, 2));
    log(`${kernel.id}: done in ${r.seconds.toFixed(0)} s`);
  };
  // Native runs alone (machine-wide checks); VMs `opts.parallel` at a time.
  for (const col of columns.filter((c) => c.kernel.native)) await runColumn(col);
  const vms = columns.filter((c) => !c.kernel.native);
  const queue = [...vms];
  await Promise.all(Array.from({ length: Math.min(opts.parallel, vms.length) }, async () => {
    for (let col; (col = queue.shift()); ) await runColumn(col);
  }));

  printMatrix(columns, checks);
  printVerifierReport(columns);
  printSupportTable(columns);
  const total = (Date.now() - t0) / 1000;
  console.log(`\nprepare ${prepared.toFixed(0)} s, total ${total.toFixed(0)} s; logs in ${OUT}/<kernel>/ (console.log, job/results/*.out)`);
  writeFileSync(join(OUT, 'summary.json'), JSON.stringify({ prepareSeconds: prepared, totalSeconds: total, columns: columns.map((c) => ({ kernel: c.kernel.id, kver: c.kver, package: c.k?.deb, seconds: c.seconds, prepareSeconds: c.prepareSeconds, error: c.error, results: c.results })) }, null, 2));
  const ok = columns.every((c) => !c.error && c.results?.every((r) => r.status === 'pass'));
  // One closing line with the tests of every kernel (a check without TAP counts as one test).
  let passed = 0;
  let failed = 0;
  for (const c of columns)
    for (const r of c.results ?? (c.error ? [{ status: 'fail' }] : [])) {
      const n = r.counts && Number.isFinite(r.counts.tests) ? r.counts : undefined;
      if (n && r.status === 'pass') passed += n.pass;
      else if (n && Number.isFinite(n.fail)) {
        passed += n.pass || 0;
        failed += Math.max(1, n.fail);
      } else if (r.status === 'pass') passed++;
      else failed++;
    }
  if (!ok && failed === 0) failed = 1;
  console.log(`\nkernels: ${passed} passed, ${failed} failed`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`kernel-matrix: ${err.message}`);
    process.exit(2);
  },
);
