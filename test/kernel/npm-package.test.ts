/**
 * The npm package is the product: `npm pack` this checkout, `npm install -g`
 * the tarball into a temporary prefix, and run the installed `ebpf-policy`
 * (demo, validate, --version) with a PATH that holds only the tools a user's
 * machine has at run time: no clang, no compiler, nothing of the checkout.
 * The prebuilt CO-RE objects in the tarball are what runs.
 */
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { PACKAGE_ROOT, PACKAGE_VERSION } from '../../src/common/package-paths.js';
import assert from 'node:assert/strict';
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { bpftool, bpftoolIds, eventually, kernelTest } from './harness.js';

/** The objects the kinds load at run time (their layout.ts); nothing else of build/bpf/ ships. */
const SHIPPED_OBJECTS = ['build/bpf/connect_policy.o', 'build/bpf/dispatcher.o', 'build/bpf/packet_filter.o', 'build/bpf/syscall_counter.o'];

/** Where `name` resolves on this process's PATH, or undefined. */
function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * A directory of symlinks to just what the installed package runs: node (the
 * bin's `#!/usr/bin/env node`), npm (to install), sh, and what the demo and
 * the kinds call: ip, tc, nsenter (iproute2, util-linux), python3 and curl.
 */
function runtimeToolsDir(dir: string): string {
  mkdirSync(dir);
  const tools: Record<string, string | undefined> = {
    node: process.execPath,
    // The interpreter itself, not a version manager's shim (a shell script that needs the manager on PATH).
    python3: which('python3') && runBounded('python3', ['-c', 'import sys; print(sys.executable)']).stdout.trim(),
  };
  for (const name of ['npm', 'sh', 'ip', 'tc', 'nsenter', 'curl']) tools[name] = which(name);
  for (const [name, target] of Object.entries(tools)) {
    assert.ok(target, `${name} is needed on this machine to run the installed package`);
    symlinkSync(target, join(dir, name));
  }
  return dir;
}

kernelTest(
  'the npm tarball ships the built package and no test objects; installed with -g into a prefix it runs `demo`, `validate` and `--version` without clang',
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'ebpf-policy-npm-'));
    try {
      // Pack this checkout (prepack builds it).
      const packed = runBounded('npm', ['pack', '--json', '--pack-destination', work], { cwd: PACKAGE_ROOT }, 300_000);
      assert.equal(packed.status, 0, packed.stderr);
      const tarballs = readdirSync(work).filter((f) => f.endsWith('.tgz'));
      assert.deepEqual(tarballs, [`ebpf-policy-${PACKAGE_VERSION}.tgz`]);
      const tarball = join(work, tarballs[0]!);

      const listed = runBounded('tar', ['-tzf', tarball]);
      assert.equal(listed.status, 0, listed.stderr);
      const files = listed.stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
      for (const f of ['package.json', 'README.md', 'dist/src/cli/main.js', 'contrib/ebpf-policy.service', 'docs/install.md', 'docs/kernels.md', 'schemas/envelope.schema.json', 'policies/port-steering.yaml']) {
        assert.ok(files.includes(f), `the tarball lacks ${f}`);
      }
      assert.deepEqual(files.filter((f) => f.startsWith('build/')).sort(), SHIPPED_OBJECTS);
      assert.deepEqual(files.filter((f) => f.includes('build/bpf/test_') || f.includes('_variant.o') || /^dist\/(test|bench)\//.test(f)), []);
      assert.deepEqual(files.filter((f) => !/^(package\.json|README\.md|dist\/src\/.*\.js|build\/bpf\/\w+\.o|schemas\/[\w-]+\.schema\.json|policies\/[\w-]+\.yaml|docs\/[\w-]+\.md|contrib\/ebpf-policy\.service|examples\/xdp-counter\/(xdp_counter\.[co]|build\.sh|tuple-counter\.yaml))$/.test(f)), []);

      // A PATH without clang, for the install and every run. npm_* variables of an enclosing `npm test` stay out.
      const tools = runtimeToolsDir(join(work, 'tools'));
      const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
      env.PATH = tools;
      for (const compiler of ['clang', 'llc', 'cc', 'gcc']) {
        const found = runBounded('sh', ['-c', `command -v ${compiler}`], { env });
        assert.notEqual(found.status, 0, `${compiler} resolves on the stripped PATH: ${found.stdout}`);
      }

      const prefix = join(work, 'prefix');
      const installed = runBounded('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { env, cwd: work }, 300_000);
      assert.equal(installed.status, 0, installed.stdout + installed.stderr);
      const bin = join(prefix, 'bin', 'ebpf-policy');
      const pkg = join(prefix, 'lib', 'node_modules', 'ebpf-policy');

      const version = runBounded(bin, ['--version'], { env });
      assert.equal(version.status, 0, version.stderr);
      assert.equal(version.stdout.trim(), PACKAGE_VERSION);

      const valid = runBounded(bin, ['validate', '--policies', join(pkg, 'policies')], { env });
      assert.equal(valid.status, 0, valid.stdout + valid.stderr);
      // The Program example ships its object, whose digest its policy names: valid as installed, with no compiler.
      const example = runBounded(bin, ['validate', '--policies', join(pkg, 'examples', 'xdp-counter')], { env });
      assert.equal(example.status, 0, example.stdout + example.stderr);

      const before = { prog: bpftoolIds('prog'), link: bpftoolIds('link') };
      const demo = runBounded(bin, ['demo'], { env, cwd: work }, 120_000);
      assert.equal(demo.status, 0, demo.stdout + demo.stderr);
      assert.match(demo.stdout, /demo: OK/);
      // The demo read the installed package's example policies, not this checkout's.
      assert.ok(demo.stdout.includes(`policy ${join(pkg, 'policies', 'port-steering.yaml')}`), demo.stdout);
      assert.match(demo.stdout, /after: {2}:8081 -> 200, :9000 -> 200, :9010 -> 200, :9011 -> refused; telnet :23 -> dropped; 169\.254\.169\.254:80 from the cgroup -> denied \(EPERM\)/);
      // A detached link frees its program after an RCU grace period (raw tracepoint links defer it): wait for that.
      const added = (kind: 'prog' | 'link'): number[] => [...bpftoolIds(kind)].filter((id) => !before[kind].has(id));
      await eventually(() => added('link').length === 0 && added('prog').length === 0, 5000);
      assert.deepEqual(added('link'), [], 'no new link is left');
      assert.deepEqual(added('prog').map((id) => bpftool('prog', 'show', 'id', String(id))), [], 'no new program is left');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
  900_000,
);
