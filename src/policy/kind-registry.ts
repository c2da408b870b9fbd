/**
 * A registry of policy-document kinds, keyed by the documents' "kind" field.
 * The policy layer knows no kind: the registry of the kinds the product ships
 * is built in src/kinds/registry.ts and handed to loading and validation.
 */
import type { AnyPolicyKind } from './kind.js';

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
