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

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses a dotted-quad IPv4 address ("192.0.2.1").
 * Octets with leading zeros ("010.0.0.1") are rejected because some tools
 * read them as octal.
 * @returns the address as a 32-bit unsigned integer, or undefined if `text` is not one.
 */
export function parseIPv4(text: string): number | undefined {
  const octets = text.split('.');
  if (octets.length !== 4) return undefined;
  let value = 0;
  for (const octet of octets) {
    if (!DECIMAL_OCTET.test(octet)) return undefined;
    const n = Number(octet);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

function parseHexGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  for (const group of text.split(':')) {
    if (!HEX_GROUP.test(group)) return undefined;
    groups.push(parseInt(group, 16));
  }
  return groups;
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
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  if (ipv4Tail !== undefined) value = (value << 32n) | BigInt(ipv4Tail);
  return value;
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
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * Formats a 128-bit unsigned bigint as an IPv6 address in the canonical
 * text form of RFC 5952: lowercase, no leading zeros, the longest run (the
 * first one on ties) of two or more zero groups compressed to "::", and
 * IPv4-mapped addresses as "::ffff:192.0.2.1".
 */
export function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(value & 0xffffffffn)}`;
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
