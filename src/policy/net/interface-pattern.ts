/**
 * Interface names and patterns of them: "eth0", "veth*", "eth?". A name is
 * what Linux accepts (1..15 bytes, not "." or "..", no "/", ":" or
 * whitespace); a pattern is a name where "*" matches any run of characters
 * (also none) and "?" exactly one.
 */

/** Longest interface name Linux accepts (IFNAMSIZ - 1). */
export const MAX_INTERFACE_NAME = 15;

/** True when `pattern` has a "*" or "?" (it is a pattern, not a plain name). */
export function isInterfaceGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** Why `value` is not a valid interface name or pattern, or undefined if it is. Never throws. */
export function explainInterfacePattern(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (Buffer.byteLength(value) > MAX_INTERFACE_NAME) return `${Buffer.byteLength(value)} bytes, at most ${MAX_INTERFACE_NAME} allowed`;
  if (value === '.' || value === '..') return '"." and ".." are not interface names';
  const bad = /[/:\s]/.exec(value);
  if (bad !== null) return `${JSON.stringify(bad[0])} is not allowed in interface names`;
  if (/[[\]]/.test(value)) return 'character classes ("[...]") are not supported; use "*" or "?"';
  return undefined;
}

/** Compiles a pattern into an anchored regular expression. */
function toRegExp(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.+()|{}[\]]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, 's');
}

const cache = new Map<string, RegExp>();

/** True when interface `name` matches `pattern` (a name matches only itself). */
export function matchesInterface(pattern: string, name: string): boolean {
  if (!isInterfaceGlob(pattern)) return pattern === name;
  let re = cache.get(pattern);
  if (re === undefined) {
    re = toRegExp(pattern);
    cache.set(pattern, re);
  }
  return re.test(name);
}

/**
 * True when some interface name could match both patterns. Exact for every
 * pair of names and patterns with "*" and "?" (a small automaton product).
 */
export function patternsOverlap(a: string, b: string): boolean {
  const x = [...a];
  const y = [...b];
  const seen = new Set<string>();
  const visit = (i: number, j: number): boolean => {
    const key = `${i},${j}`;
    if (seen.has(key)) return false;
    seen.add(key);
    if (i === x.length && j === y.length) return true;
    const p = x[i];
    const q = y[j];
    if (p === '*' && visit(i + 1, j)) return true;
    if (q === '*' && visit(i, j + 1)) return true;
    if (p === undefined || q === undefined) return false;
    // Both consume one character: any character fits "?" and "*"; literals must agree.
    const fits = p === '*' || q === '*' || p === '?' || q === '?' || p === q;
    if (!fits) return false;
    return visit(p === '*' ? i : i + 1, q === '*' ? j : j + 1);
  };
  return visit(0, 0);
}
