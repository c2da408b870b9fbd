/**
 * IP prefixes in CIDR notation: strict parsing with human-readable reasons,
 * canonical formatting, containment, intersection and aggregation.
 */
import { ADDRESS_BITS, formatIpAddress, parseIpAddress, parseIPv4, parseIPv6, type IpFamily } from './ip.js';

/** A network prefix: the address with host bits cleared, and its length in bits. */
export interface IpPrefix {
  readonly family: IpFamily;
  /** Network address, host bits zero. */
  readonly address: bigint;
  /** Prefix length, 0..32 for IPv4 and 0..128 for IPv6. */
  readonly length: number;
}

/** Result of {@link parseCidr}: the prefix, or why the text is not one. */
export type CidrParseResult =
  | { readonly ok: true; readonly prefix: IpPrefix; readonly hostBitsSet: boolean }
  | { readonly ok: false; readonly reason: string };

/** The prefixes that match every IPv4 and every IPv6 destination. */
export const ALL_ADDRESSES: readonly IpPrefix[] = [
  { family: 4, address: 0n, length: 0 },
  { family: 6, address: 0n, length: 0 },
];

const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/** The mask selecting the network bits of a prefix of `length` bits. */
export function prefixMask(family: IpFamily, length: number): bigint {
  const masks = family === 4 ? IPV4_MASKS : IPV6_MASKS;
  const known = masks[length];
  if (known !== undefined) return known;
  const width = BigInt(ADDRESS_BITS[family]);
  const hostBits = width - BigInt(length);
  return ((1n << width) - 1n) ^ ((1n << hostBits) - 1n);
}

function masksOf(width: number): bigint[] {
  const all = (1n << BigInt(width)) - 1n;
  return Array.from({ length: width + 1 }, (_, length) => all ^ ((1n << BigInt(width - length)) - 1n));
}

/** Every mask of each family, computed once: BigInt shifts are a large part of normalizing a prefix. */
const IPV4_MASKS = masksOf(32);
const IPV6_MASKS = masksOf(128);

/**
 * Parses "ADDRESS/LENGTH" (IPv4 or IPv6). Host bits may be set; they are
 * cleared in the returned prefix and reported through `hostBitsSet`.
 * Never throws.
 */
export function parseCidr(text: string): CidrParseResult {
  let parsed = parsedCidrs.get(text);
  if (parsed === undefined) {
    if (parsedCidrs.size >= MAX_PARSED_CIDRS) parsedCidrs.clear();
    parsed = parseCidrText(text);
    parsedCidrs.set(text, parsed);
  }
  return parsed;
}

/**
 * Results of {@link parseCidr} by text (results are immutable): validating a
 * document parses each of its prefixes three times (the schema's format, the
 * kind's checks, normalization), and the daemon sees the same texts on every
 * pass. Bounded: cleared when full.
 */
const parsedCidrs = new Map<string, CidrParseResult>();
const MAX_PARSED_CIDRS = 65536;

function parseCidrText(text: string): CidrParseResult {
  const slash = text.indexOf('/');
  if (slash < 0) {
    return { ok: false, reason: `missing "/LENGTH", e.g. "${text}/${text.includes(':') ? 128 : 32}"` };
  }
  const addressText = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  const family: IpFamily = addressText.includes(':') ? 6 : 4;
  const address: number | bigint | undefined = family === 6 ? parseIPv6(addressText) : parseIPv4(addressText);
  if (address === undefined) {
    return { ok: false, reason: `"${addressText}" is not an IPv${family} address` };
  }
  if (!PREFIX_LENGTH.test(lengthText)) {
    return { ok: false, reason: `prefix length "${lengthText}" is not a number` };
  }
  const length = Number(lengthText);
  const width = ADDRESS_BITS[family];
  if (length > width) {
    return { ok: false, reason: `prefix length ${length} is longer than ${width} bits` };
  }
  if (typeof address === 'number') {
    // IPv4: the host bits cleared in 32-bit arithmetic, one bigint made.
    const network = length === 0 ? 0 : (address & (-1 << (32 - length))) >>> 0;
    return { ok: true, prefix: { family, address: BigInt(network), length }, hostBitsSet: network !== address };
  }
  const network = address & prefixMask(family, length);
  return { ok: true, prefix: { family, address: network, length }, hostBitsSet: network !== address };
}

/** Formats a prefix canonically: "10.0.0.0/8", "2001:db8::/32". */
export function formatPrefix(prefix: IpPrefix): string {
  return `${formatIpAddress(prefix.family, prefix.address)}/${prefix.length}`;
}

/** True if every address of `inner` is in `outer`. */
export function prefixContains(outer: IpPrefix, inner: IpPrefix): boolean {
  return (
    outer.family === inner.family &&
    outer.length <= inner.length &&
    (inner.address & prefixMask(outer.family, outer.length)) === outer.address
  );
}

/** Total order: IPv4 before IPv6, then by address, then shorter prefixes first. */
export function comparePrefixes(a: IpPrefix, b: IpPrefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  return a.length - b.length;
}

/** True if `a` and `b` are the two halves of the same prefix one bit shorter. */
function areSiblings(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family || a.length !== b.length || a.length === 0) return false;
  const bit = 1n << BigInt(ADDRESS_BITS[a.family] - a.length);
  return (a.address & bit) === 0n && b.address === (a.address | bit);
}

/**
 * Returns the smallest sorted list of prefixes covering exactly the same
 * addresses as `prefixes`: duplicates and prefixes contained in others are
 * dropped, and sibling halves are merged ("10.0.0.0/9" + "10.128.0.0/9" =
 * "10.0.0.0/8").
 */
export function aggregatePrefixes(prefixes: readonly IpPrefix[]): IpPrefix[] {
  const sorted = [...prefixes].sort(comparePrefixes);
  const out: IpPrefix[] = [];
  for (const prefix of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && prefixContains(last, prefix)) continue;
    out.push(prefix);
    for (;;) {
      const b = out[out.length - 1];
      const a = out[out.length - 2];
      if (a === undefined || b === undefined || !areSiblings(a, b)) break;
      out.splice(out.length - 2, 2, { family: a.family, address: a.address, length: a.length - 1 });
    }
  }
  return out;
}

/**
 * Returns the aggregated set of addresses that are in both lists, as
 * prefixes (two prefixes intersect only when one contains the other).
 */
export function intersectPrefixes(a: readonly IpPrefix[], b: readonly IpPrefix[]): IpPrefix[] {
  const common: IpPrefix[] = [];
  for (const x of a) {
    for (const y of b) {
      if (prefixContains(x, y)) common.push(y);
      else if (prefixContains(y, x)) common.push(x);
    }
  }
  return aggregatePrefixes(common);
}

/**
 * The prefixes of the texts that are valid CIDR prefixes (host bits
 * cleared), in order; invalid texts are skipped. Never throws.
 */
export function parseCidrList(texts: readonly string[]): IpPrefix[] {
  return texts.flatMap((text) => {
    const parsed = parseCidr(text);
    return parsed.ok ? [parsed.prefix] : [];
  });
}

/** The IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2), ::ffff:0:0/96. */
export const IPV4_MAPPED: IpPrefix = { family: 6, address: 0xffffn << 32n, length: 96 };

/**
 * The IPv4 prefix that an IPv4-mapped IPv6 prefix (::ffff:0:0/96 or longer)
 * stands for ("::ffff:10.0.0.0/104" is 10.0.0.0/8), or undefined for any
 * other prefix.
 */
export function mappedToIPv4(prefix: IpPrefix): IpPrefix | undefined {
  if (!prefixContains(IPV4_MAPPED, prefix)) return undefined;
  return { family: 4, address: prefix.address & 0xffffffffn, length: prefix.length - IPV4_MAPPED.length };
}

/**
 * True if a CIDR text is written with an IPv4-mapped address but a prefix
 * shorter than /96 ("::ffff:10.0.0.0/80"): once its host bits are cleared
 * it covers IPv4-mapped and other IPv6 addresses alike. Never throws.
 */
export function isShortMappedCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const parsed = parseCidr(text);
  const address = slash < 0 ? undefined : parseIpAddress(text.slice(0, slash));
  return (
    parsed.ok &&
    address !== undefined &&
    parsed.prefix.family === 6 &&
    parsed.prefix.length < IPV4_MAPPED.length &&
    prefixContains(IPV4_MAPPED, { family: 6, address: address.value, length: 128 })
  );
}
