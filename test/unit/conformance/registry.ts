/**
 * Every conformance kit, one per registered kind. A kind registered in
 * src/kinds/registry.ts without a kit here makes the conformance suite fail
 * (see {@link kitProblems}): adding a kind means adding its kit.
 */
import { KINDS } from '../../../src/kinds/registry.js';
import { connectPolicyKit } from './connect-policy.kit.js';
import type { AnyConformanceKit } from './kit.js';
import { packetFilterKit } from './packet-filter.kit.js';
import { portSteeringKit } from './port-steering.kit.js';
import { programKit } from './program.kit.js';
import { syscallCounterKit } from './syscall-counter.kit.js';

/** The kits, in registry order. */
export const KITS: readonly AnyConformanceKit[] = [portSteeringKit, packetFilterKit, connectPolicyKit, syscallCounterKit, programKit];

/**
 * What is wrong with the kits as a whole, as messages (empty: nothing): a
 * registered kind without a kit, a kit whose kind is not the registered
 * object, two kits of one kind, and pin directories that are not one path
 * segment of their own.
 */
export function kitProblems(): string[] {
  const problems: string[] = [];
  for (const kind of KINDS) {
    const kits = KITS.filter((k) => k.kind.kind === kind.kind);
    if (kits.length === 0)
      problems.push(
        `kind ${kind.kind} is registered in src/kinds/registry.ts but has no conformance kit: add test/unit/conformance/<kind>.kit.ts and list it in KITS (test/unit/conformance/registry.ts)`,
      );
    if (kits.length > 1) problems.push(`kind ${kind.kind} has ${kits.length} conformance kits`);
    for (const kit of kits) if (kit.kind !== kind) problems.push(`the kit of ${kind.kind} does not test the registered kind object`);
    if (!/^[A-Za-z0-9_-]+$/.test(kind.pinDir)) problems.push(`kind ${kind.kind} owns pin directory "${kind.pinDir}", which is not one path segment`);
    const sharing = KINDS.filter((k) => k !== kind && k.pinDir === kind.pinDir).map((k) => k.kind);
    if (sharing.length > 0) problems.push(`kind ${kind.kind} shares its pin directory "${kind.pinDir}" with ${sharing.join(', ')}`);
  }
  for (const kit of KITS) if (!KINDS.includes(kit.kind)) problems.push(`the kit of ${kit.kind.kind} tests a kind that is not registered`);
  return problems;
}
