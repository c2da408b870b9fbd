/**
 * contrib/kubernetes/: every manifest parses (the same under YAML 1.1, which
 * kubectl reads, and 1.2) into the Kubernetes client library's typed models
 * and back without losing a field (a misspelled field is dropped by the model,
 * so it fails here); the container's arguments parse with the CLI's own
 * reconcile command; the mounts, probes, annotations and image agree with the
 * CLI's defaults and with each other; and the ConfigMap's policies, laid out
 * as the kubelet lays out a ConfigMap volume, load — and would be refused
 * without --insecure-policy-perms, which is why the DaemonSet passes it.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parse, parseAllDocuments } from 'yaml';
import {
  dumpYaml,
  loadYaml,
  V1ConfigMap,
  V1DaemonSet,
  V1Namespace,
  V1ServiceAccount,
  type V1Container,
  type V1Probe,
  type V1Volume,
  type V1VolumeMount,
} from '@kubernetes/client-node';
import { registerReconcile } from '../../src/cli/reconcile.js';
import { parseDaemonOptions, type DaemonCliOptions } from '../../src/cli/daemon.js';
import type { CommonOptions } from '../../src/cli/common.js';
import { loadPolicies } from '../../src/manager.js';
import { DEFAULT_POLICY_DIRECTORY } from '../../src/policy/discover.js';
import { createStrictModesCheck } from '../../src/policy/permissions.js';
import { formatProblem } from '../../src/policy/problem.js';
import { DEFAULT_ROOT } from '../../src/reconciler/reconcile.js';
import { REPO_ROOT, withTempDir } from './policy-test-helpers.js';

const DIR = join(REPO_ROOT, 'contrib', 'kubernetes');
const PACKAGE = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
/** What $(POD_IP) stands for when the arguments are parsed here. */
const SAMPLE_POD_IP = '192.0.2.10';

type Plain = Record<string, unknown>;

interface Manifest {
  file: string;
  plain: Plain;
}

/** Every document of every contrib/kubernetes/*.yaml, parsed strictly as YAML 1.2 and checked to mean the same as YAML 1.1. */
function readManifests(): Manifest[] {
  const files = readdirSync(DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  assert.ok(files.length > 0, `no manifests in ${DIR}`);
  const out: Manifest[] = [];
  for (const file of files) {
    const text = readFileSync(join(DIR, file), 'utf8');
    const read = (version: '1.1' | '1.2') => {
      const docs = parseAllDocuments(text, { version, uniqueKeys: true, strict: true, prettyErrors: true });
      assert.ok(Array.isArray(docs), `${file}: no YAML documents`);
      return docs;
    };
    const docs12 = read('1.2');
    const docs11 = read('1.1');
    for (const d of [...docs12, ...docs11]) {
      assert.deepEqual(d.errors.map(String), [], `${file}: YAML errors`);
      assert.deepEqual(d.warnings.map(String), [], `${file}: YAML warnings`);
    }
    const plain12 = docs12.map((d) => d.toJS() as Plain).filter((d) => d !== null);
    const plain11 = docs11.map((d) => d.toJS() as Plain).filter((d) => d !== null);
    assert.deepEqual(plain11, plain12, `${file} means something else to YAML 1.1 (kubectl) than to YAML 1.2 (octal numbers, yes/no/on/off?)`);
    for (const plain of plain12) out.push({ file, plain });
  }
  return out;
}

const manifests = readManifests();

function only<T>(kind: string): { file: string; plain: Plain; typed: T } {
  const found = manifests.filter((m) => m.plain.kind === kind);
  assert.equal(found.length, 1, `expected exactly one ${kind}, found ${found.length}`);
  const m = found[0]!;
  return { ...m, typed: loadYaml<T>(JSON.stringify(m.plain)) };
}

const namespace = only<V1Namespace>('Namespace');
const serviceAccount = only<V1ServiceAccount>('ServiceAccount');
const configMap = only<V1ConfigMap>('ConfigMap');
const daemonSet = only<V1DaemonSet>('DaemonSet');
const pod = daemonSet.typed.spec!.template.spec!;
const daemon = (() => {
  assert.equal(pod.containers.length, 1, 'one container');
  return pod.containers[0]!;
})();

function volumeOf(mount: V1VolumeMount): V1Volume {
  const v = pod.volumes?.find((x) => x.name === mount.name);
  assert.ok(v, `volume ${mount.name} of the mount at ${mount.mountPath} is not declared`);
  return v;
}

function mountAt(container: V1Container, mountPath: string): V1VolumeMount {
  const m = container.volumeMounts?.find((x) => x.mountPath === mountPath);
  assert.ok(m, `container ${container.name} mounts nothing at ${mountPath}`);
  return m;
}

/** The mount of `container` whose directory holds `path` (the deepest one). */
function mountHolding(container: V1Container, path: string): V1VolumeMount {
  const holding = (container.volumeMounts ?? []).filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  holding.sort((a, b) => b.mountPath.length - a.mountPath.length);
  assert.ok(holding[0], `container ${container.name} mounts nothing that holds ${path}`);
  return holding[0];
}

/** Kubernetes' $(VAR) expansion of container arguments, from the container's env (fieldRef status.podIP: a sample address). */
function expand(args: readonly string[], container: V1Container): string[] {
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env.set(e.name, SAMPLE_POD_IP);
  }
  return args.map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
      assert.ok(env.has(name), `argument ${a} names $(${name}), which the container's env does not define`);
      return env.get(name)!;
    }),
  );
}

type ReconcileOptions = CommonOptions & DaemonCliOptions & { once: boolean };

/**
 * Parses `argv` (after the program name) with the CLI's own commands, as
 * main.ts builds them, without running anything: the subcommand must be
 * `reconcile`, and every option must be one of its options, with a valid value.
 */
function parseCli(argv: readonly string[]): ReconcileOptions {
  const program = new Command('ebpf-policy').exitOverride();
  registerReconcile(program);
  const [name, ...rest] = argv;
  assert.equal(name, 'reconcile', 'the container runs `ebpf-policy reconcile`');
  const reconcile = program.commands.find((c) => c.name() === 'reconcile')!;
  reconcile.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const { operands, unknown } = reconcile.parseOptions([...rest]);
  assert.deepEqual(unknown, [], `options reconcile does not have: ${unknown.join(' ')}`);
  assert.deepEqual(operands, [], 'reconcile takes no operands');
  const opts = reconcile.opts<ReconcileOptions>();
  assert.equal(opts.once, false, 'the daemon, not --once');
  return opts;
}

/** The port a probe connects to, resolving a named container port. */
function probePort(probe: V1Probe | undefined, container: V1Container): number {
  const port = probe?.httpGet?.port;
  assert.ok(port !== undefined, 'an httpGet probe');
  if (typeof port === 'number') return port;
  const named = container.ports?.find((p) => p.name === port);
  assert.ok(named, `probe port ${port} is not a named port of the container`);
  return named.containerPort;
}

function containerfile(): { from: string[]; text: string; entrypoint: string[]; cmd: string[] } {
  const text = readFileSync(join(DIR, 'Containerfile'), 'utf8');
  const instruction = (name: string): string[] => {
    const lines = text.split('\n').filter((l) => l.startsWith(`${name} `));
    assert.equal(lines.length, 1, `one ${name} in the Containerfile`);
    const json = JSON.parse(lines[0]!.slice(name.length + 1)) as unknown;
    assert.ok(Array.isArray(json) && json.every((x) => typeof x === 'string'), `${name} in exec (JSON) form`);
    return json as string[];
  };
  const from = text
    .split('\n')
    .filter((l) => l.startsWith('FROM '))
    .map((l) => l.slice(5).trim());
  return { from, text, entrypoint: instruction('ENTRYPOINT'), cmd: instruction('CMD') };
}

test('the manifests are a Namespace, a ServiceAccount, a ConfigMap and a DaemonSet, typed by the client library', () => {
  assert.deepEqual(manifests.map((m) => m.plain.kind).sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'ServiceAccount']);
  assert.ok(namespace.typed instanceof V1Namespace);
  assert.ok(serviceAccount.typed instanceof V1ServiceAccount);
  assert.ok(configMap.typed instanceof V1ConfigMap);
  assert.ok(daemonSet.typed instanceof V1DaemonSet);
});

test('every field survives a trip through the typed models (no misspelled or misplaced field)', () => {
  for (const m of manifests) {
    const typed = loadYaml<Plain>(JSON.stringify(m.plain));
    const back = parse(dumpYaml(typed)) as Plain;
    assert.deepEqual(back, m.plain, `${m.file}: ${String(m.plain.kind)} lost or changed fields in the typed model`);
  }
});

test('the objects refer to each other: namespace, service account, ConfigMap, selector', () => {
  const ns = namespace.typed.metadata!.name!;
  for (const m of [serviceAccount, configMap, daemonSet]) assert.equal(m.typed.metadata?.namespace, ns, `${m.file}: namespace`);
  assert.equal(namespace.typed.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'privileged', 'hostPID, hostNetwork and hostPath need the privileged Pod Security level');
  assert.equal(pod.serviceAccountName, serviceAccount.typed.metadata!.name);
  assert.equal(serviceAccount.typed.automountServiceAccountToken, false, 'the daemon does not use the API');
  assert.equal(pod.automountServiceAccountToken, false);
  const labels = daemonSet.typed.spec!.template.metadata!.labels!;
  for (const [k, v] of Object.entries(daemonSet.typed.spec!.selector.matchLabels!)) assert.equal(labels[k], v, `selector ${k}=${v} matches the pod template`);
});

test('the container arguments are the CLI reconcile daemon with valid options, and the image runs them', () => {
  assert.equal(daemon.command, undefined, 'no command: the image ENTRYPOINT runs');
  const cf = containerfile();
  assert.deepEqual(cf.entrypoint, ['ebpf-policy']);
  const opts = parseCli(expand(daemon.args ?? [], daemon));
  const parsed = parseDaemonOptions(opts);
  assert.notEqual(typeof parsed, 'string', `daemon options: ${String(parsed)}`);
  // The image's own CMD is a valid daemon command line too.
  const cmdOpts = parseCli(cf.cmd);
  assert.notEqual(typeof parseDaemonOptions(cmdOpts), 'string');
  assert.deepEqual(cmdOpts.policies ?? [DEFAULT_POLICY_DIRECTORY], [DEFAULT_POLICY_DIRECTORY]);
  // The image is this package's version, in both containers.
  for (const c of [daemon, ...(pod.initContainers ?? [])]) assert.equal(c.image, `ebpf-policy:${PACKAGE.version}`, `${c.name}: image`);
  assert.deepEqual(cf.from, ['docker.io/library/node:20-bookworm-slim']);
  assert.match(cf.text, /apt-get install -y --no-install-recommends libbpf1 iproute2/);
  assert.match(cf.text, /npm install -g .*\$\{PACKAGE\}/);
});

test('the policies are the ConfigMap, mounted where the daemon reads them (the CLI default), read-only, mode 0444', () => {
  const opts = parseCli(expand(daemon.args ?? [], daemon));
  const dirs = opts.policies ?? [DEFAULT_POLICY_DIRECTORY];
  assert.deepEqual(dirs, [DEFAULT_POLICY_DIRECTORY]);
  const mount = mountAt(daemon, DEFAULT_POLICY_DIRECTORY);
  assert.equal(mount.readOnly, true);
  assert.equal(mount.subPath, undefined, 'a subPath mount would never see ConfigMap updates');
  const volume = volumeOf(mount);
  assert.equal(volume.configMap?.name, configMap.typed.metadata!.name);
  assert.equal(volume.configMap?.defaultMode, 0o444);
  assert.equal((volume.configMap?.defaultMode ?? 0) & 0o022, 0, 'not writable by group or others');
  const keys = Object.keys(configMap.typed.data ?? {});
  assert.ok(keys.length > 0);
  for (const k of keys) assert.match(k, /\.(ya?ml|json)$/, `ConfigMap key ${k}: the daemon reads only .yaml, .yml and .json files`);
});

test('the pin root is on the host bpffs: hostPath /sys/fs/bpf, mounted from the host, made bpffs by a privileged init container', () => {
  const opts = parseCli(expand(daemon.args ?? [], daemon));
  assert.equal(opts.bpffsRoot, DEFAULT_ROOT);
  const mount = mountHolding(daemon, opts.bpffsRoot);
  assert.equal(mount.mountPath, '/sys/fs/bpf');
  assert.equal(mount.mountPropagation, 'HostToContainer');
  assert.notEqual(mount.readOnly, true);
  const volume = volumeOf(mount);
  assert.deepEqual({ ...volume.hostPath }, { path: '/sys/fs/bpf', type: 'DirectoryOrCreate' });
  // Bidirectional propagation is refused by the API server for unprivileged containers: only the init container has it.
  const init = (pod.initContainers ?? []).find((c) => c.volumeMounts?.some((m) => m.name === mount.name));
  assert.ok(init, 'an init container mounts bpffs on the host');
  assert.equal(mountAt(init, '/sys/fs/bpf').mountPropagation, 'Bidirectional');
  assert.equal(init.securityContext?.privileged, true);
  assert.match(init.command!.join(' '), /stat -f -c %T \/sys\/fs\/bpf\)" = bpf_fs .*mount -t bpf/s);
  for (const c of [daemon, ...(pod.initContainers ?? [])])
    for (const m of c.volumeMounts ?? [])
      if (m.mountPropagation === 'Bidirectional') assert.equal(c.securityContext?.privileged, true, `${c.name}: Bidirectional needs privileged`);
});

test('host paths the daemon resolves are the host ones: cgroup2, /run/netns, /run/ebpf-policy', () => {
  const cgroup = mountAt(daemon, '/sys/fs/cgroup');
  assert.equal(cgroup.readOnly, true);
  assert.equal(volumeOf(cgroup).hostPath?.path, '/sys/fs/cgroup');
  const netns = mountAt(daemon, '/run/netns');
  assert.equal(netns.mountPropagation, 'HostToContainer');
  assert.equal(volumeOf(netns).hostPath?.path, '/run/netns');
  const run = mountAt(daemon, '/run/ebpf-policy');
  assert.equal(volumeOf(run).hostPath?.path, '/run/ebpf-policy');
  assert.notEqual(run.readOnly, true);
});

test('metrics: bound to the pod (node) address, probed and scraped on the same port', () => {
  const opts = parseCli(expand(daemon.args ?? [], daemon));
  const parsed = parseDaemonOptions(opts);
  assert.ok(typeof parsed !== 'string' && parsed.metricsAddress);
  const { host, port } = parsed.metricsAddress;
  assert.equal(host, SAMPLE_POD_IP, 'bound to $(POD_IP): the address the kubelet probes and Prometheus scrapes');
  assert.equal(pod.hostNetwork, true);
  const liveness = daemon.livenessProbe;
  const readiness = daemon.readinessProbe;
  assert.equal(probePort(liveness, daemon), port);
  assert.equal(probePort(readiness, daemon), port);
  assert.equal(liveness?.httpGet?.path, '/metrics');
  assert.equal(readiness?.httpGet?.path, '/healthz');
  for (const p of [liveness, readiness]) assert.equal(p?.httpGet?.host, undefined, 'probes go to the pod IP, where the server listens');
  const metricsPort = daemon.ports?.find((p) => p.containerPort === port);
  assert.ok(metricsPort, 'the metrics port is declared');
  assert.equal(metricsPort.hostPort, port, 'hostNetwork: hostPort = containerPort');
  const annotations = daemonSet.typed.spec!.template.metadata!.annotations!;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(annotations['prometheus.io/port'], String(port));
  assert.equal(annotations['prometheus.io/path'], '/metrics');
  const env = daemon.env?.find((e) => e.name === 'POD_IP');
  assert.equal(env?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
});

test('least privilege: not privileged, every capability dropped but the five the daemon uses, host PID and network', () => {
  const sc = daemon.securityContext!;
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities?.drop, ['ALL']);
  assert.deepEqual([...(sc.capabilities?.add ?? [])].sort(), ['BPF', 'DAC_READ_SEARCH', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE']);
  assert.equal(sc.runAsUser, 0, 'root: the policy permission check trusts root, and the pins are root-owned');
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.equal(sc.appArmorProfile?.type, 'Unconfined');
  assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
  assert.equal(pod.hostPID, true, '{pid, fd} targets are host pids');
  assert.equal(pod.hostNetwork, true);
});

test('a rolling update replaces one pod at a time, each given longer than the daemon takes to stop', () => {
  const strategy = daemonSet.typed.spec!.updateStrategy!;
  assert.equal(strategy.type, 'RollingUpdate');
  assert.equal(strategy.rollingUpdate?.maxUnavailable, 1);
  assert.equal(strategy.rollingUpdate?.maxSurge, 0);
  const source = readFileSync(join(REPO_ROOT, 'src', 'cli', 'daemon.ts'), 'utf8');
  const m = /const SHUTDOWN_GRACE_MS = ([\d_]+);/.exec(source);
  assert.ok(m, 'SHUTDOWN_GRACE_MS in src/cli/daemon.ts');
  const stopSeconds = Number(m[1]!.replace(/_/g, '')) / 1000;
  assert.ok((pod.terminationGracePeriodSeconds ?? 30) > stopSeconds, `terminationGracePeriodSeconds > ${stopSeconds}`);
});

/**
 * Writes a ConfigMap volume as the kubelet does: the volume directory mode
 * 0777 (an emptyDir), a `..TIMESTAMP` directory 0755 holding the files at
 * `defaultMode`, `..data` pointing at it, and `KEY -> ..data/KEY`.
 */
function writeConfigMapVolume(dir: string, data: Record<string, string>, mode: number): void {
  mkdirSync(dir, { mode: 0o777 });
  chmodSync(dir, 0o777);
  const stamp = '..2026_01_05_10_00_00.123456789';
  mkdirSync(join(dir, stamp), { mode: 0o755 });
  chmodSync(join(dir, stamp), 0o755);
  for (const [key, text] of Object.entries(data)) {
    writeFileSync(join(dir, stamp, key), text);
    chmodSync(join(dir, stamp, key), mode);
  }
  symlinkSync(stamp, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const key of Object.keys(data)) symlinkSync(join('..data', key), join(dir, key));
}

test('the ConfigMap policies load from a kubelet-style volume; its 0777 directory is refused by the permission check, hence --insecure-policy-perms', () => {
  const data = configMap.typed.data ?? {};
  const mode = pod.volumes!.find((v) => v.configMap?.name === configMap.typed.metadata!.name)!.configMap!.defaultMode!;
  withTempDir((tmp) => {
    const dir = join(tmp, 'ebpf-policies');
    writeConfigMapVolume(dir, data, mode);
    const strict = loadPolicies({ paths: [dir], trustCheck: createStrictModesCheck({ uid: process.getuid?.() ?? 0 }) });
    assert.equal(strict.ok, false);
    assert.deepEqual(strict.policies, []);
    assert.match(strict.problems.map(formatProblem).join('\n'), /bad ownership or modes for directory .*ebpf-policies: mode 0777 is writable by group and others/);
    const insecure = loadPolicies({ paths: [dir], insecurePermissions: true });
    assert.deepEqual(insecure.problems.map(formatProblem), []);
    assert.deepEqual(
      insecure.files,
      Object.keys(data)
        .sort()
        .map((k) => join(dir, k)),
    );
    assert.ok(insecure.policies.length >= Object.keys(data).length);
  });
  const opts = parseCli(expand(daemon.args ?? [], daemon));
  assert.equal(opts.insecurePolicyPerms, true, 'the DaemonSet passes --insecure-policy-perms');
});
