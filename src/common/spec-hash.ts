/**
 * The hash of what defines a policy, recorded with its kernel state so a
 * changed document is told apart from an unchanged one: the first 16 hex
 * digits of the SHA-256 of the spec's JSON. Every kind hashes its specs with
 * this one function.
 */
import { createHash } from 'node:crypto';

/** Hash of `spec` (a plain JSON value; key order matters, so build it in a fixed order). */
export function hashSpec(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}
