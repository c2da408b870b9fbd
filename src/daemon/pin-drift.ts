/**
 * The part of drift every kind shares: pins under the root that a pass left
 * and that are gone now, or that appeared without a pass. Pure.
 */

function some(list: string[], max = 3): string {
  return list.length <= max ? list.join(', ') : `${list.slice(0, max).join(', ')} and ${list.length - max} more`;
}

/** Names the pins removed and the pins added between `expected` (after a pass) and `seen` (now). */
export function findPinDrift(expected: readonly string[], seen: readonly string[]): string[] {
  const out: string[] = [];
  const now = new Set(seen);
  const before = new Set(expected);
  const gone = expected.filter((p) => !now.has(p));
  const added = seen.filter((p) => !before.has(p));
  if (gone.length > 0) out.push(`pin${gone.length === 1 ? '' : 's'} removed: ${some(gone)}`);
  if (added.length > 0) out.push(`unexpected pin${added.length === 1 ? '' : 's'}: ${some(added)}`);
  return out;
}
