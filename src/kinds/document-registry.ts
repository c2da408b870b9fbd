/**
 * The registry of policy kinds, keyed by the documents' "kind" field.
 * To add a kind: add schemas/KIND.schema.json, run `npm run gen:types`,
 * write kinds/KIND.ts implementing PolicyKind, and list it in POLICY_KINDS.
 */
import type { AnyPolicyKind } from '../policy/kind.js';
import { packetFilterKind } from './packet-filter/document.js';
import { portSteeringKind } from './port-steering/document.js';

/** Every supported kind. */
export const POLICY_KINDS = [portSteeringKind, packetFilterKind] as const;

/** The normalized desired state of any supported policy, discriminated by `kind`. */
export type DesiredPolicy = ReturnType<(typeof POLICY_KINDS)[number]['normalize']>;

/** Looks up kinds by name. */
export interface KindRegistry {
  get(kind: string): AnyPolicyKind | undefined;
  /** Known kind names, sorted. */
  readonly names: readonly string[];
  readonly kinds: readonly AnyPolicyKind[];
}

/**
 * Builds a registry from kind modules.
 * @throws Error if two modules claim the same kind (a programming error).
 */
export function createKindRegistry(kinds: readonly AnyPolicyKind[]): KindRegistry {
  const byName = new Map<string, AnyPolicyKind>();
  for (const kind of kinds) {
    if (byName.has(kind.kind)) throw new Error(`policy kind "${kind.kind}" is registered twice`);
    byName.set(kind.kind, kind);
  }
  return { get: (name) => byName.get(name), names: [...byName.keys()].sort(), kinds: [...kinds] };
}

/** The registry of all supported kinds. */
export const defaultKindRegistry: KindRegistry = createKindRegistry(POLICY_KINDS);
