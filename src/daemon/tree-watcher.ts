/**
 * Watches files and directory trees with chokidar and reports that
 * something changed (never what: the daemon reads everything again).
 *
 * chokidar does not watch a path that does not exist yet, and forgets a
 * directory that is deleted and created again. So a missing path is watched
 * through its nearest existing ancestor (reporting only events on the way to
 * the path), and {@link TreeWatcher.refresh}, called after every pass,
 * restarts the watcher when a watched path appeared, disappeared or was
 * replaced by another inode. The watcher holds an fd on each watched root, so
 * a deleted root's inode number cannot be reused while we compare with it.
 */
import { closeSync, openSync, statSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/** Called for every change; `event` is chokidar's (add, change, unlink, addDir, unlinkDir). */
export type ChangeListener = (event: string, path: string) => void;

/** What to watch for each path: itself when it exists, else its nearest existing ancestor. */
export interface WatchPlan {
  /** Paths handed to chokidar. */
  roots: string[];
  /** Identity of what is watched: changes when a path appears, disappears or is replaced. */
  identity: string;
}

function inode(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Computes the {@link WatchPlan} of absolute `paths` from the file system as it is now. */
export function planWatch(paths: string[]): WatchPlan {
  const roots = new Set<string>();
  const identity: string[] = [];
  for (const p of paths) {
    let at = p;
    let ino = inode(at);
    while (ino === undefined && dirname(at) !== at) {
      at = dirname(at);
      ino = inode(at);
    }
    roots.add(at);
    identity.push(`${p}=${at === p ? '' : `missing under ${at} `}${ino ?? '?'}`);
  }
  return { roots: [...roots].sort(), identity: identity.join('\n') };
}

/** True when `path` is one of `paths`, lies below one, or lies on the way to one. */
export function isRelevant(path: string, paths: string[]): boolean {
  return paths.some((p) => path === p || path.startsWith(p.endsWith(sep) ? p : p + sep) || p.startsWith(path.endsWith(sep) ? path : path + sep));
}

/**
 * Owns one chokidar watcher over some paths; close() releases it. Errors of
 * chokidar go to `onError` (watching goes on).
 */
export class TreeWatcher {
  readonly #paths: string[];
  readonly #onChange: ChangeListener;
  readonly #onError: (err: Error) => void;
  #watcher: FSWatcher | undefined;
  #identity = '';
  /** Fds on the watched roots (see the module comment). */
  #held: number[] = [];
  #closed = false;

  private constructor(paths: string[], onChange: ChangeListener, onError: (err: Error) => void) {
    this.#paths = [...new Set(paths.map((p) => resolve(p)))];
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Starts watching `paths` (files or directories, present or not); resolves once chokidar has read them. */
  static async start(paths: string[], onChange: ChangeListener, onError: (err: Error) => void): Promise<TreeWatcher> {
    const w = new TreeWatcher(paths, onChange, onError);
    await w.#restart(planWatch(w.#paths));
    return w;
  }

  /** Absolute paths watched. */
  get paths(): string[] {
    return [...this.#paths];
  }

  /**
   * Restarts the watcher when what should be watched changed (a path
   * appeared, vanished or was replaced). Returns true when it restarted:
   * changes made while it restarted may have gone unreported.
   */
  async refresh(): Promise<boolean> {
    if (this.#closed) return false;
    const plan = planWatch(this.#paths);
    if (plan.identity === this.#identity) return false;
    await this.#restart(plan);
    return true;
  }

  /** Stops watching. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#watcher;
    this.#watcher = undefined;
    this.#release();
    await w?.close();
  }

  #release(): void {
    for (const fd of this.#held) closeSync(fd);
    this.#held = [];
  }

  #hold(roots: string[]): void {
    this.#release();
    for (const r of roots) {
      try {
        this.#held.push(openSync(r, 'r'));
      } catch {
        // vanished meanwhile: the next refresh sees it
      }
    }
  }

  async #restart(plan: WatchPlan): Promise<void> {
    const old = this.#watcher;
    this.#watcher = undefined;
    await old?.close();
    if (this.#closed) return;
    this.#hold(plan.roots);
    const paths = this.#paths;
    const watcher = watch(plan.roots, {
      ignoreInitial: true,
      // Report unlinks at once: every event only schedules a full pass anyway.
      atomic: false,
      followSymlinks: true,
      ignored: (p: string) => !isRelevant(resolve(p), paths),
    });
    watcher.on('all', (event, path) => {
      if (isRelevant(resolve(path), paths)) this.#onChange(event, path);
    });
    watcher.on('error', (err) => this.#onError(err instanceof Error ? err : new Error(String(err))));
    await new Promise<void>((r) => watcher.once('ready', () => r()));
    this.#watcher = watcher;
    this.#identity = plan.identity;
    if (this.#closed) await this.close();
  }
}
