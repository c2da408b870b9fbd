/**
 * Finds the policy files under the paths given by the user: files as named,
 * directories recursively in sorted order, skipping hidden entries and
 * editor leftovers, and reading a Kubernetes ConfigMap mount once.
 */
import { readdirSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import type { PolicySyntax } from './parse.js';
import type { TrustCheck } from './permissions.js';
import type { PolicyProblem, Severity } from './problem.js';
import { compareCodeUnits } from '../common/compare.js';

/** The directory read when no path is given. */
export const DEFAULT_POLICY_DIRECTORY = '/etc/ebpf-policies';

/** File name extensions read from directories (case-insensitive), and how they are parsed. */
export const POLICY_EXTENSIONS: Readonly<Record<string, PolicySyntax>> = { '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json' };

/** A policy file to read. */
export interface PolicyFile {
  /** The path as shown to the user (relative paths stay relative). */
  readonly path: string;
  /** Absolute path with symbolic links resolved; the file actually read. */
  readonly realPath: string;
  readonly syntax: PolicySyntax;
}

/** Options of {@link discoverPolicyFiles}. */
export interface DiscoverOptions {
  /** Directory relative paths are resolved against. Default: process.cwd(). */
  readonly cwd?: string;
  /** A missing path is a warning rather than an error (used for the default directory). */
  readonly allowMissing?: boolean;
  /** Permission check; undefined disables it (--insecure-policy-perms). */
  readonly trustCheck?: TrustCheck;
}

/** Result of {@link discoverPolicyFiles}. */
export interface DiscoveredPolicyFiles {
  readonly files: PolicyFile[];
  /** Every path looked at, files and directories, in order (used to sort problems). */
  readonly visited: string[];
  readonly problems: PolicyProblem[];
}

/**
 * True for directory entries that are never read: hidden files and
 * directories (".foo", including editor locks ".#foo" and the ConfigMap
 * internals "..data" and "..2024_01_01_..."), backups "foo~", and vim swap
 * files "foo.swp" / ".swo" / ".swx".
 */
export function isIgnoredEntry(name: string): boolean {
  return name.startsWith('.') || name.endsWith('~') || /\.sw[a-p]$/.test(name) || (name.startsWith('#') && name.endsWith('#'));
}

/** How a file is parsed, from its extension; undefined if directories should skip it. */
export function syntaxOf(name: string): PolicySyntax | undefined {
  return POLICY_EXTENSIONS[extname(name).toLowerCase()];
}

function errnoMessage(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
      return 'permission denied';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    default:
      return e.code ?? e.message;
  }
}

/**
 * Lists the policy files under `paths`, in order: each path in turn; a
 * directory's entries sorted by name (code-unit order), depth first.
 * Symbolic links are followed (which is how a ConfigMap mount's top-level
 * "name.yaml -> ..data/name.yaml" links are read, while "..data" itself is
 * hidden and skipped), and a file reached twice is listed once. Files named
 * explicitly are read whatever their extension; in directories only
 * .yaml, .yml and .json files are. Problems (missing paths, refused
 * permissions, unreadable directories) are returned, never thrown.
 */
export function discoverPolicyFiles(paths: readonly string[], options: DiscoverOptions = {}): DiscoveredPolicyFiles {
  const cwd = options.cwd ?? process.cwd();
  const files: PolicyFile[] = [];
  const visited: string[] = [];
  const problems: PolicyProblem[] = [];
  const seenFiles = new Set<string>();
  const seenDirectories = new Set<string>();
  const report = (path: string, message: string, severity: Severity = 'error'): void => {
    problems.push({ file: path, line: 0, column: 0, path: '', message, severity });
  };
  const trusted = (shown: string, realPath: string, type: 'file' | 'directory'): boolean => {
    const refusal = options.trustCheck?.(realPath, type);
    if (refusal !== undefined) report(shown, refusal);
    return refusal === undefined;
  };

  /** `realPath`: known when the file is an entry other than a symbolic link of a directory whose real path is known. */
  const addFile = (shown: string, absolute: string, syntax: PolicySyntax, realPath = realpathSync(absolute)): void => {
    if (seenFiles.has(realPath)) return;
    seenFiles.add(realPath);
    visited.push(shown);
    if (trusted(shown, realPath, 'file')) files.push({ path: shown, realPath, syntax });
  };

  const walk = (shown: string, absolute: string): void => {
    const realPath = realpathSync(absolute);
    if (seenDirectories.has(realPath)) return; // reached twice, or a symlink loop
    seenDirectories.add(realPath);
    visited.push(shown);
    if (!trusted(shown, realPath, 'directory')) return;
    let entries: Dirent[];
    try {
      entries = readdirSync(absolute, { withFileTypes: true });
    } catch (error) {
      report(shown, `cannot read directory: ${errnoMessage(error)}`);
      return;
    }
    const kept = entries.filter((e) => !isIgnoredEntry(e.name));
    kept.sort((a, b) => compareCodeUnits(a.name, b.name));
    for (const entry of kept) {
      const name = entry.name;
      const childShown = join(shown, name);
      const childAbsolute = join(absolute, name);
      let st: Stats;
      try {
        st = statSync(childAbsolute);
      } catch (error) {
        report(childShown, `skipped: ${errnoMessage(error)} (a dangling symbolic link?)`, 'warning');
        continue;
      }
      try {
        if (st.isDirectory()) {
          walk(childShown, childAbsolute);
        } else if (st.isFile()) {
          const syntax = syntaxOf(name);
          // An entry that is not a symbolic link is where its directory is: no need to resolve its path again.
          if (syntax !== undefined) addFile(childShown, childAbsolute, syntax, entry.isSymbolicLink() ? undefined : join(realPath, name));
        }
      } catch (error) {
        report(childShown, `cannot read: ${errnoMessage(error)}`);
      }
    }
  };

  for (const given of paths) {
    const absolute = resolve(cwd, given);
    let st: Stats;
    try {
      st = statSync(absolute);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && options.allowMissing === true) {
        report(given, 'does not exist; no policies loaded from it', 'warning');
      } else {
        report(given, `cannot read: ${errnoMessage(error)}`);
      }
      continue;
    }
    try {
      if (st.isDirectory()) walk(given, absolute);
      else if (st.isFile()) addFile(given, absolute, syntaxOf(given) ?? 'yaml');
      else report(given, 'not a regular file or directory');
    } catch (error) {
      report(given, `cannot read: ${errnoMessage(error)}`);
    }
  }
  return { files, visited, problems };
}
