/**
 * Port numbers and inclusive port ranges: parsing with reasons, merging,
 * intersection and formatting.
 */

/** Lowest and highest valid TCP/UDP port numbers. */
export const MIN_PORT = 1;
export const MAX_PORT = 65535;

/** An inclusive range of ports, start <= end. */
export interface PortRange {
  readonly start: number;
  readonly end: number;
}

/** Result of {@link parsePortRange}: the range, or why the text is not one. */
export type PortRangeParseResult =
  | { readonly ok: true; readonly range: PortRange }
  | { readonly ok: false; readonly reason: string };

const RANGE = /^([0-9]+)-([0-9]+)$/;

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PORT && n <= MAX_PORT;
}

/** Parses an inclusive range "START-END" (1 <= START <= END <= 65535). Never throws. */
export function parsePortRange(text: string): PortRangeParseResult {
  if (/^[0-9]+$/.test(text)) {
    return { ok: false, reason: `write a single port as a number, without quotes: ${text}` };
  }
  const match = RANGE.exec(text);
  if (match === null) return { ok: false, reason: 'expected "START-END", e.g. "9000-9100"' };
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!isPort(start)) return { ok: false, reason: `start port ${start} is out of range ${MIN_PORT}..${MAX_PORT}` };
  if (!isPort(end)) return { ok: false, reason: `end port ${end} is out of range ${MIN_PORT}..${MAX_PORT}` };
  if (start > end) return { ok: false, reason: 'start > end' };
  return { ok: true, range: { start, end } };
}

/**
 * Parses a PacketFilter port string: a single port ("23") or an inclusive
 * range ("9000-9100"). Never throws.
 */
export function parseFilterPort(text: string): PortRangeParseResult {
  if (/^[0-9]+$/.test(text)) {
    const port = Number(text);
    if (!isPort(port)) return { ok: false, reason: `port ${port} is out of range ${MIN_PORT}..${MAX_PORT}` };
    return { ok: true, range: { start: port, end: port } };
  }
  return parsePortRange(text);
}

/**
 * Converts one entry of a policy's port list (a port number or a range
 * string) into a range.
 * @throws Error if the entry is not valid; validate it first (schema formats do).
 */
export function portSpecToRange(spec: number | string): PortRange {
  if (typeof spec === 'number') {
    if (!isPort(spec)) throw new Error(`invalid port ${spec}`);
    return { start: spec, end: spec };
  }
  const parsed = parsePortRange(spec);
  if (!parsed.ok) throw new Error(`invalid port range "${spec}": ${parsed.reason}`);
  return parsed.range;
}

/**
 * Converts one entry of a rule's port list in the PacketFilter syntax (a
 * port number, a port string "23" or a range string "9000-9100") into a range.
 * @throws Error if the entry is not valid; validate it first (schema formats do).
 */
export function filterPortToRange(spec: number | string): PortRange {
  if (typeof spec === 'number') return portSpecToRange(spec);
  const parsed = parseFilterPort(spec);
  if (!parsed.ok) throw new Error(`invalid port "${spec}": ${parsed.reason}`);
  return parsed.range;
}

/** Number of ports in a range. */
export function rangeSize(range: PortRange): number {
  return range.end - range.start + 1;
}

/**
 * Sorts ranges and merges overlapping and adjacent ones, so that the result
 * is strictly increasing with gaps of at least one port between ranges.
 */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: PortRange[] = [];
  for (const range of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && range.start <= last.end + 1) {
      if (range.end > last.end) out[out.length - 1] = { start: last.start, end: range.end };
    } else {
      out.push(range);
    }
  }
  return out;
}

/** Intersection of two merged (sorted, disjoint) range lists, merged. */
export function intersectPortRanges(a: readonly PortRange[], b: readonly PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as PortRange;
    const y = b[j] as PortRange;
    const start = Math.max(x.start, y.start);
    const end = Math.min(x.end, y.end);
    if (start <= end) out.push({ start, end });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

/** Formats ranges for people: "8081, 9000-9010". */
export function formatPortRanges(ranges: readonly PortRange[]): string {
  return ranges.map((r) => (r.start === r.end ? String(r.start) : `${r.start}-${r.end}`)).join(', ');
}

/**
 * Splits the inclusive range lo..hi into the fewest aligned port blocks
 * (at most 30 for any range). Throws RangeError on a bad range.
 */
export function portRangeBlocks(lo: number, hi: number): Array<{ port: number; bits: number }> {
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > 65535 || lo > hi)
    throw new RangeError(`bad port range ${lo}-${hi}`);
  const out: Array<{ port: number; bits: number }> = [];
  let cur = lo;
  while (cur <= hi) {
    let size = 1;
    // Grow while the block stays aligned and inside the range.
    while (size < 65536 && cur % (size * 2) === 0 && cur + size * 2 - 1 <= hi) size *= 2;
    out.push({ port: cur, bits: 16 - Math.log2(size) });
    cur += size;
  }
  return out;
}
