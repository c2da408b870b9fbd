/**
 * Shared helpers for the policy-layer unit tests (not a test file itself).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePolicyText, type PolicySyntax } from '../../src/policy/parse.js';
import { validatePolicyDocuments } from '../../src/manager.js';
import type { ValidationResult } from '../../src/policy/validate.js';

/** The repository root (tests run from dist/test/unit/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** test/fixtures/ in the source tree. */
export const FIXTURES_DIR = join(REPO_ROOT, 'test', 'fixtures');

/** Creates a temporary directory (mode 0755), runs `fn` in it, and removes it. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-test-'));
  chmodSync(dir, 0o755);
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes files (relative path -> content) below `dir`, creating directories; files get mode 0644. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true, mode: 0o755 });
    writeFileSync(full, content, { mode: 0o644 });
    chmodSync(full, 0o644);
  }
}

/** A valid PortSteering document in YAML, with optional replacements of spec fields. */
export function portSteeringYaml(name: string, spec = 'protocol: tcp\n  ports: [8081]\n  target:\n    listen: "127.0.0.1:8080"'): string {
  return `apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata:\n  name: ${name}\nspec:\n  ${spec}\n`;
}

/** Parses and validates one text as a file named `file`. */
export function validateText(text: string, syntax: PolicySyntax = 'yaml', file = 'test.yaml'): ValidationResult & { parseProblems: number } {
  const parsed = parsePolicyText(file, text, syntax);
  const result = validatePolicyDocuments(parsed.documents);
  return { policies: result.policies, problems: [...parsed.problems, ...result.problems], parseProblems: parsed.problems.length };
}
