/** Helpers of the daemon's end-to-end tests: the daemon as a child process, its JSON logs, HTTP inside the sandbox. */
import { runBounded, scaled, withTimeout } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** One JSON log line of the daemon. */
export type LogLine = Record<string, unknown> & { msg: string; level: string };

/**
 * `ebpf-policy reconcile` (the daemon) running as a child process. It runs
 * in the sandbox's network namespace (nsenter, which keeps our mount
 * namespace and so our bpffs), so its metrics server listens there and no
 * test traffic touches the host's network. The test owns it: stop() or
 * kill() it in a finally.
 */
export class DaemonProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly #child: ChildProcess;
  readonly #closed: Promise<number | null>;
  #waiters: Array<() => void> = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#closed = once(child, 'close').then(([code]) => code as number | null);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as LogLine);
      } catch {
        this.lines.push({ msg: 'unparsable log line', level: 'error', text: l });
      }
      for (const w of this.#waiters) w();
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    void this.#closed.then(() => {
      for (const w of this.#waiters) w();
    });
  }

  /** Starts the daemon on `policyDir` with pins under `pinDir`; `args` are extra flags, `env` extra environment. */
  static start(sandbox: NetnsSandbox, pinDir: string, policyDir: string, args: string[] = [], env: Record<string, string> = {}): DaemonProcess {
    const child = spawn(
      'nsenter',
      [`--net=${sandbox.path}`, process.execPath, cli, 'reconcile', '--policies', policyDir, '--bpffs-root', pinDir, '--log-level', 'debug', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
    );
    return new DaemonProcess(child);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get exited(): boolean {
    return this.#child.exitCode !== null || this.#child.signalCode !== null;
  }

  /** The pass summary lines (`reconcile pass`), optionally from line index `from` on. */
  passes(from = 0): LogLine[] {
    return this.lines.slice(from).filter((l) => l.msg === 'reconcile pass');
  }

  /** Waits for a log line from index `from` on that matches; fails with the log when none comes in `ms`. */
  async waitFor(what: string, match: (l: LogLine) => boolean, from = 0, boundMs = 15_000): Promise<LogLine> {
    const ms = scaled(boundMs);
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.lines.slice(from).find(match);
      if (hit) return hit;
      if (this.exited || Date.now() > end) assert.fail(`no log line for ${what} within ${ms} ms${this.exited ? ' (the daemon exited)' : ''}\n${this.dump()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
      this.#waiters = [];
    }
  }

  /** Waits for the next pass summary line from index `from` on. */
  async nextPass(from = 0, ms = 15_000): Promise<LogLine> {
    return this.waitFor('a reconcile pass', (l) => l.msg === 'reconcile pass', from, ms);
  }

  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }

  /** SIGTERM, then the exit code (SIGKILL after `ms`). */
  async stop(ms = 10_000): Promise<number | null> {
    if (!this.exited) this.#child.kill('SIGTERM');
    const t = setTimeout(() => this.#child.kill('SIGKILL'), scaled(ms));
    try {
      return await withTimeout(this.#closed, ms + 10_000, `the daemon (pid ${this.pid}) to stop after SIGTERM`);
    } finally {
      clearTimeout(t);
    }
  }

  /** Waits for the daemon to exit on its own (at most `ms`): its exit code or the signal that ended it. */
  async exit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    await withTimeout(this.#closed, ms, `the daemon (pid ${this.pid}) to exit`);
    return { code: this.#child.exitCode, signal: this.#child.signalCode };
  }

  /** SIGKILL unless it already exited (for finally blocks). */
  async kill(): Promise<void> {
    if (!this.exited) this.#child.kill('SIGKILL');
    await withTimeout(this.#closed, 10_000, `the daemon (pid ${this.pid}) to die after SIGKILL`);
  }

  /** The log and stderr, for assertion messages. */
  dump(): string {
    return `--- daemon log ---\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n--- stderr ---\n${this.stderr}`;
  }
}

/** GET http://127.0.0.1:PORT/PATH from inside the sandbox with curl: status (0 when it failed) and body. */
export function httpGet(sandbox: NetnsSandbox, port: number, path: string): { status: number; body: string } {
  const r = runBounded('ip', ['netns', 'exec', sandbox.name, 'curl', '-s', '--max-time', '2', '-w', '\n%{http_code}', `http://127.0.0.1:${port}${path}`]);
  const out = r.stdout ?? '';
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)) || 0, body: out.slice(0, cut) };
}

/** Value of a sample line `NAME{LABELS} VALUE` in Prometheus text, or undefined. */
export function sample(text: string, nameAndLabels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${nameAndLabels} `));
  return line === undefined ? undefined : Number(line.slice(nameAndLabels.length + 1));
}
