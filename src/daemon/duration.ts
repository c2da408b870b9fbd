/**
 * Durations on the command line: `500ms`, `30s`, `5m`, `1h`, and sums of
 * them such as `1m30s` (Go's time.ParseDuration syntax, without signs).
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Durations above this are refused (setTimeout cannot wait longer than 2^31-1 ms). */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Parses a duration into milliseconds. `0` alone is accepted (without a
 * unit); every other number needs a unit: `ms`, `s`, `m` or `h`. Decimals are
 * allowed (`1.5s`); the result is rounded to whole milliseconds.
 * @throws RangeError naming the text and the accepted syntax when it is not a
 * duration, or when it exceeds {@link MAX_DURATION_MS}.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (t === '0') return 0;
  const part = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < t.length) {
    part.lastIndex = at;
    const m = part.exec(t);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = part.lastIndex;
  }
  if (t.length === 0 || at !== t.length)
    throw new RangeError(`"${text}" is not a duration: write a number with a unit, e.g. 500ms, 30s, 5m, 1h or 1m30s`);
  const ms = Math.round(total);
  if (ms > MAX_DURATION_MS) throw new RangeError(`"${text}" is too long: at most ${formatDuration(MAX_DURATION_MS)}`);
  return ms;
}

/** Writes milliseconds the way {@link parseDuration} reads them back, e.g. `1m30s`, `250ms`, `0`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  let rest = Math.round(ms);
  const out: string[] = [];
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out.push(`${n}${unit}`);
    rest -= n * size;
  }
  return out.join('');
}
