/**
 * Throwaway network namespaces with real processes in them, for the demo,
 * the kernel tests and the benchmarks. A sandbox creates its namespace with
 * iproute2, runs helper processes inside it with `ip netns exec`, and
 * removes everything on destroy(). Nothing here touches BPF.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { killAndWait, runBounded, scaled } from './bounded-wait.js';

/** Prefix of every namespace a sandbox creates, so leftovers are easy to find. */
export const SANDBOX_PREFIX = 'ebpf-policy-';

function run(cmd: string, args: string[]): string {
  const r = runBounded(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A listening TCP server running inside a sandbox. */
export interface SandboxServer {
  /** Pid of the server process (not of `ip`: ip netns exec execs the program). */
  pid: number;
  /** The listening socket's fd number inside the server process. */
  fd: number;
  address: string;
  port: number;
  process: ChildProcess;
}

// A tiny TCP server: prints "ready FD", then answers every connection with the
// port it listens on and the local port the client connected to.
const SERVER_PY = `
import socket, sys, os
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(128)
print("ready", s.fileno(), flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(("listener=%d local=%d pid=%d\\n" % (port, c.getsockname()[1], os.getpid())).encode())
    finally:
        c.close()
`;

const CLIENT_PY = `
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
c = socket.socket(fam, socket.SOCK_STREAM)
c.settimeout(float(sys.argv[3]))
try:
    c.connect((host, port))
    print(c.makefile().readline().strip())
except OSError as e:
    print("error", e.__class__.__name__, flush=True)
    sys.exit(3)
`;

/** Owns one network namespace and the processes started in it. */
export class NetnsSandbox implements AsyncDisposable {
  readonly name: string;
  readonly #children = new Set<ChildProcess>();
  #destroyed = false;

  private constructor(name: string) {
    this.name = name;
  }

  /** Creates a namespace named `ebpf-policy-<tag>-<random>` with loopback up. Throws when iproute2 fails. */
  static create(tag = 'sandbox'): NetnsSandbox {
    const name = `${SANDBOX_PREFIX}${tag}-${randomBytes(3).toString('hex')}`;
    run('ip', ['netns', 'add', name]);
    const sb = new NetnsSandbox(name);
    try {
      run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    } catch (err) {
      runBounded('ip', ['netns', 'del', name]);
      throw err;
    }
    return sb;
  }

  /** Bind-mount path of the namespace, for opening an fd on it. */
  get path(): string {
    return `/run/netns/${this.name}`;
  }

  /** Runs a command inside the namespace and returns its stdout. Throws on a non-zero exit. */
  exec(args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, ...args]);
  }

  /**
   * Starts a process inside the namespace; destroy() kills it. Its stdout and
   * stderr are always drained (a chatty server, such as http.server logging
   * each request, would otherwise block once the pipe is full); callers may
   * listen to them too.
   */
  spawn(args: string[], options: { stdin?: 'ignore' | 'pipe' } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, ...args], { stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', () => undefined);
    child.stderr?.on('data', () => undefined);
    this.#children.add(child);
    child.once('close', () => this.#children.delete(child));
    return child;
  }

  /** Starts the helper TCP server on address:port and waits until it listens. */
  async startServer(address: string, port: number, timeoutMs = 5000): Promise<SandboxServer> {
    const child = this.spawn(['python3', '-c', SERVER_PY, address, String(port)]);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => child.kill('SIGKILL'), scaled(timeoutMs));
    try {
      const ready = await Promise.race([
        once(lines, 'line').then(([l]) => String(l)),
        once(child, 'exit').then(() => {
          throw new Error(`server on ${address}:${port} in ${this.name} exited: ${stderr.trim()}`);
        }),
      ]);
      const m = /^ready (\d+)$/.exec(ready);
      if (!m || child.pid === undefined) throw new Error(`unexpected server output: ${ready}`);
      return { pid: child.pid, fd: Number(m[1]), address, port, process: child };
    } finally {
      clearTimeout(timer);
      lines.close();
    }
  }

  /**
   * Connects from inside the namespace to address:port and returns the
   * server's greeting, or `error <Name>` when the connection failed.
   */
  connect(address: string, port: number, timeoutSeconds = 2): string {
    const r = runBounded('ip', ['netns', 'exec', this.name, 'python3', '-c', CLIENT_PY, address, String(port), String(timeoutSeconds)], {}, timeoutSeconds * 1000 + 10_000);
    return r.stdout.trim() || `error exit ${r.status}: ${r.stderr.trim()}`;
  }

  /**
   * Kills every process started here, waits until they are gone (so their
   * pipes are closed), and deletes the namespace. Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const exits = await Promise.allSettled([...this.#children].map((c) => killAndWait(c, `sandbox ${this.name} process ${c.spawnargs.slice(3).join(' ').slice(0, 80)}`)));
    runBounded('ip', ['netns', 'del', this.name]);
    const stuck = exits.flatMap((e) => (e.status === 'rejected' ? [String((e.reason as Error).message)] : []));
    if (stuck.length) throw new Error(`sandbox ${this.name}: ${stuck.join('; ')}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}
