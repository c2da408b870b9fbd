/**
 * Strict parsing and canonical formatting of literal IPv4 and IPv6 addresses.
 *
 * Addresses are held as unsigned bigints (32 bits for IPv4, 128 bits for
 * IPv6) so that prefix masks and comparisons are plain integer arithmetic.
 * Nothing here resolves host names or accepts IPv6 zone ids ("fe80::1%eth0").
 */

/** Address family: 4 for IPv4, 6 for IPv6. */
export type IpFamily = 4 | 6;

/** Number of bits in an address of each family. */
export const ADDRESS_BITS: Readonly<Record<IpFamily, number>> = { 4: 32, 6: 128 };

/**
 * Parses a dotted-quad IPv4 address ("192.0.2.1").
 * Octets with leading zeros ("010.0.0.1") are rejected because some tools
 * read them as octal.
 * @returns the address as a 32-bit unsigned integer, or undefined if `text` is not one.
 */
export function parseIPv4(text: string): number | undefined {
  // Four octets "0" or 1-3 ASCII digits without a leading zero, at most 255, separated by "."; no split or regexp per octet.
  let value = 0;
  let octets = 0;
  let i = 0;
  for (;;) {
    const start = i;
    let octet = 0;
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) octet = octet * 10 + (c - 48);
    const digits = i - start;
    if (digits === 0 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 48) || octet > 255) return undefined;
    value = value * 256 + octet;
    if (++octets === 4) return i === text.length ? value : undefined;
    if (text.charCodeAt(i) !== 46) return undefined;
    i++;
  }
}

/** The groups of "h:h:...:h" (1-4 hex digits each; "" is no group), or undefined if one is not. */
function parseHexGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    let group = 0;
    for (;;) {
      const c = text.charCodeAt(i);
      const digit = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (digit < 0) break;
      group = group * 16 + digit;
      i++;
    }
    if (i === start || i - start > 4) return undefined;
    groups.push(group);
    if (i === text.length) return groups;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
  }
}

/** Hex digits of a 16-bit group, zero-padded to 4. */
function hex4(group: number): string {
  return (group + 0x10000).toString(16).slice(1);
}

/**
 * Parses a textual IPv6 address (RFC 4291 section 2.2: full, "::"-compressed,
 * or with an embedded dotted-quad IPv4 tail such as "::ffff:192.0.2.1").
 * @returns the address as a 128-bit unsigned bigint, or undefined if `text` is not one.
 */
export function parseIPv6(text: string): bigint | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  let groupsText = text;
  let ipv4Tail: number | undefined;
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    if (lastColon < 0) return undefined;
    ipv4Tail = parseIPv4(text.slice(lastColon + 1));
    if (ipv4Tail === undefined) return undefined;
    groupsText = text.slice(0, lastColon + 1);
    if (!groupsText.endsWith('::')) groupsText = groupsText.slice(0, -1);
  }
  const groupCount = ipv4Tail === undefined ? 8 : 6;
  const halves = groupsText.split('::');
  if (halves.length > 2) return undefined;
  const head = parseHexGroups(halves[0] ?? '');
  if (head === undefined) return undefined;
  let groups: number[];
  if (halves.length === 1) {
    if (head.length !== groupCount) return undefined;
    groups = head;
  } else {
    const tail = parseHexGroups(halves[1] ?? '');
    if (tail === undefined || head.length + tail.length > groupCount - 1) return undefined;
    groups = [...head, ...new Array<number>(groupCount - head.length - tail.length).fill(0), ...tail];
  }
  // One bigint from 32 hex digits rather than a shift and an OR per group.
  let hex = '0x';
  for (const group of groups) hex += hex4(group);
  if (ipv4Tail !== undefined) hex += hex4(Math.floor(ipv4Tail / 0x10000)) + hex4(ipv4Tail % 0x10000);
  return BigInt(hex);
}

/**
 * Parses an IPv4 or IPv6 address literal; the family is chosen by the
 * presence of ":".
 * @returns the family and value, or undefined if `text` is not an address.
 */
export function parseIpAddress(text: string): { family: IpFamily; value: bigint } | undefined {
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIPv4(text);
  return value === undefined ? undefined : { family: 4, value: BigInt(value) };
}

/** Formats a 32-bit unsigned integer as a dotted-quad IPv4 address. */
export function formatIPv4(value: number | bigint): string {
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * Formats a 128-bit unsigned bigint as an IPv6 address in the canonical
 * text form of RFC 5952: lowercase, no leading zeros, the longest run (the
 * first one on ties) of two or more zero groups compressed to "::", and
 * IPv4-mapped addresses as "::ffff:192.0.2.1".
 */
export function formatIPv6(value: bigint): string {
  // The groups from the value's 32 hex digits rather than a shift and a mask per group.
  const digits = value.toString(16).padStart(32, '0');
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(digits.slice(i, i + 4), 16));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4((groups[6] as number) * 0x10000 + (groups[7] as number))}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Formats an address of the given family in its canonical text form. */
export function formatIpAddress(family: IpFamily, value: bigint): string {
  return family === 4 ? formatIPv4(value) : formatIPv6(value);
}
