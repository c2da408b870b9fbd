/**
 * Socket addresses written as "ADDR:PORT" ("127.0.0.1:8080", "[::1]:8080").
 */
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6, type IpFamily } from './ip.js';
import { MAX_PORT, MIN_PORT } from './ports.js';

/** A literal IP address and port. */
export interface SocketAddress {
  readonly family: IpFamily;
  /** Canonical text of the address (RFC 5952 for IPv6), without brackets. */
  readonly address: string;
  readonly port: number;
}

/** Result of {@link parseListenAddress}: the address, or why the text is not one. */
export type ListenAddressParseResult =
  | { readonly ok: true; readonly value: SocketAddress }
  | { readonly ok: false; readonly reason: string };

const PORT = /^(0|[1-9][0-9]{0,4})$/;

/**
 * Parses "IPV4:PORT" or "[IPV6]:PORT" with a literal address (host names
 * are not resolved) and a port in 1..65535. Never throws.
 */
export function parseListenAddress(text: string): ListenAddressParseResult {
  let parsed = parsedAddresses.get(text);
  if (parsed === undefined) {
    if (parsedAddresses.size >= MAX_PARSED_ADDRESSES) parsedAddresses.clear();
    parsed = parseListenAddressText(text);
    parsedAddresses.set(text, parsed);
  }
  return parsed;
}

/**
 * Results of {@link parseListenAddress} by text (results are immutable):
 * validating a document parses its address twice (the schema's format and
 * normalization), and the daemon sees the same texts on every pass. Bounded:
 * cleared when full.
 */
const parsedAddresses = new Map<string, ListenAddressParseResult>();
const MAX_PARSED_ADDRESSES = 65536;

function parseListenAddressText(text: string): ListenAddressParseResult {
  let host: string;
  let portText: string;
  let family: IpFamily;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, reason: 'missing "]" after the IPv6 address' };
    host = text.slice(1, close);
    family = 6;
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return { ok: false, reason: 'missing ":PORT" after "]", e.g. "[::1]:8080"' };
    portText = rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: 'missing ":PORT", e.g. "127.0.0.1:8080"' };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    family = 4;
    if (host.includes(':')) return { ok: false, reason: 'write IPv6 addresses in brackets, e.g. "[::1]:8080"' };
  }
  const value: number | bigint | undefined = family === 6 ? parseIPv6(host) : parseIPv4(host);
  if (value === undefined) {
    const hint = family === 4 && /[a-zA-Z]/.test(host) ? '; host names are not resolved' : '';
    return { ok: false, reason: `"${host}" is not an IPv${family} address${hint}` };
  }
  if (!PORT.test(portText)) return { ok: false, reason: `port "${portText}" is not a number` };
  const port = Number(portText);
  if (port < MIN_PORT || port > MAX_PORT) {
    return { ok: false, reason: `port ${port} is out of range ${MIN_PORT}..${MAX_PORT}` };
  }
  return { ok: true, value: { family, address: typeof value === 'number' ? formatIPv4(value) : formatIPv6(value), port } };
}
