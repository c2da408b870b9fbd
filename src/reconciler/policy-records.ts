/**
 * The policy records an object (a filter, a guard) keeps in its own map, one
 * per policy it serves: what a plan must write and delete so that they are
 * exactly the wanted ones. Pure.
 */

/**
 * Records to write (missing or different from `want`) and names to delete
 * (records of policies no longer served, and unreadable records of those).
 * An unreadable record of a policy still served is overwritten by its write:
 * deleting it too would drop the new record, since deletes run after writes.
 */
export function policyRecordChanges<R extends { name: string }>(
  have: readonly R[],
  unreadable: readonly { name: string }[],
  want: readonly R[],
): { upserts: R[]; deletes: string[] } {
  const current = new Map(have.map((r) => [r.name, JSON.stringify(r)]));
  const served = new Set(want.map((r) => r.name));
  return {
    upserts: want.filter((r) => current.get(r.name) !== JSON.stringify(r)),
    deletes: [...have.filter((r) => !served.has(r.name)).map((r) => r.name), ...unreadable.filter((b) => !served.has(b.name)).map((b) => b.name)],
  };
}
