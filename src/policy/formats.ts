/**
 * The custom string formats used by the JSON Schemas ("format": "port-range"
 * etc.). Each format both validates (for ajv) and explains what is wrong, so
 * error messages can say why a value is invalid rather than just "does not
 * match pattern".
 */
import { parseCidr } from './net/cidr.js';
import { parseIpAddress } from './net/ip.js';
import { parseListenAddress } from './net/listen-address.js';
import { explainInterfacePattern } from './net/interface-pattern.js';
import { parseFilterPort, parsePortRange } from './net/ports.js';

/** A named string syntax with an explanation of invalid values. */
export interface StringFormat {
  /** What a value is called in messages: `"x" is not a valid NOUN (reason)`. */
  readonly noun: string;
  /** Why `value` is invalid, or undefined if it is valid. Never throws. */
  explain(value: string): string | undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function explainDns1123Label(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 63) return `${value.length} characters, at most 63 allowed`;
  if (DNS_LABEL.test(value)) return undefined;
  if (/[A-Z]/.test(value)) return 'uppercase letters are not allowed; use lowercase a-z, 0-9 and "-"';
  const bad = /[^-a-z0-9]/.exec(value);
  if (bad !== null) return `${JSON.stringify(bad[0])} is not allowed; use lowercase a-z, 0-9 and "-"`;
  return 'must start and end with a letter or digit';
}

function explainLabelName(value: string, what: string): string | undefined {
  if (value.length > 63) return `${what} has ${value.length} characters, at most 63 allowed`;
  if (LABEL_NAME.test(value)) return undefined;
  return `${what} must consist of letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
}

function explainLabelKey(value: string): string | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) return value === '' ? 'must not be empty' : explainLabelName(value, 'the name');
  const prefix = value.slice(0, slash);
  const name = value.slice(slash + 1);
  if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
    return 'the prefix before "/" must be a lowercase DNS subdomain (e.g. "example.com")';
  }
  if (name === '') return 'missing the name after "/"';
  return explainLabelName(name, 'the name after "/"');
}

function explainLabelValue(value: string): string | undefined {
  return value === '' ? undefined : explainLabelName(value, 'the value');
}

function explainNetnsPath(value: string): string | undefined {
  if (!value.startsWith('/')) return 'must be an absolute path, e.g. "/run/netns/web"';
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (value.length > 4096) return `${value.length} characters, at most 4096 allowed`;
  if (value.endsWith('/')) return 'must name a file, not end with "/"';
  return undefined;
}

/**
 * A cgroup v2 directory, absolute or relative to the cgroup2 mount. ".."
 * segments are refused everywhere: in a relative path they could leave the
 * cgroup2 mount, and in an absolute one the kernel resolves them after
 * following symbolic links, so the path would not mean what it reads as.
 */
function explainCgroupPath(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (value.length > 4096) return `${value.length} characters, at most 4096 allowed`;
  if (value.split('/').includes('..')) {
    return value.startsWith('/')
      ? '".." segments are not allowed; write the cgroup directory\'s path without them'
      : '".." segments are not allowed in a path relative to the cgroup2 mount (it must stay below the mount)';
  }
  return undefined;
}

/** A system call name as in the kernel's table ("execve"), or "*" for every system call; whether the name exists is checked by the kind. */
function explainSyscallName(value: string): string | undefined {
  if (value === '*' || /^[a-z0-9_]+$/.test(value)) return undefined;
  if (value === '') return 'must not be empty';
  if (value.includes('*')) return 'patterns are not supported: "*" alone stands for every system call';
  if (/^[a-zA-Z0-9_]+$/.test(value)) return `system call names are lowercase ("${value.toLowerCase()}")`;
  const bad = /[^a-z0-9_]/.exec(value);
  return `${JSON.stringify(bad![0])} is not allowed; a system call name has lowercase a-z, 0-9 and "_" (e.g. "execve")`;
}

/** The formats, keyed by the name used in the schemas' "format" keyword. */
export const STRING_FORMATS: Readonly<Record<string, StringFormat>> = {
  'dns1123-label': { noun: 'name', explain: explainDns1123Label },
  'label-key': { noun: 'label key', explain: explainLabelKey },
  'label-value': { noun: 'label value', explain: explainLabelValue },
  'port-range': {
    noun: 'port range',
    explain: (value) => {
      const parsed = parsePortRange(value);
      return parsed.ok ? undefined : parsed.reason;
    },
  },
  cidr: {
    noun: 'CIDR prefix',
    explain: (value) => {
      const parsed = parseCidr(value);
      return parsed.ok ? undefined : parsed.reason;
    },
  },
  'netns-path': { noun: 'network namespace path', explain: explainNetnsPath },
  'cgroup-path': { noun: 'cgroup path', explain: explainCgroupPath },
  'syscall-name': { noun: 'system call name', explain: explainSyscallName },
  'interface-pattern': { noun: 'interface name or pattern', explain: explainInterfacePattern },
  'filter-port': {
    noun: 'port or port range',
    explain: (value) => {
      const parsed = parseFilterPort(value);
      return parsed.ok ? undefined : parsed.reason;
    },
  },
  'listen-address': {
    noun: 'listen address',
    explain: (value) => {
      const parsed = parseListenAddress(value);
      return parsed.ok ? undefined : parsed.reason;
    },
  },
  'ip-address': {
    noun: 'IP address',
    explain: (value) => (parseIpAddress(value) !== undefined ? undefined : value.includes('/') ? 'a single address, without a prefix length' : 'expected an IPv4 address (198.51.100.7) or an IPv6 address (2001:db8::1)'),
  },
};

/**
 * The formats as ajv takes them (`ajv.addFormat(name, definition)`): valid
 * when {@link StringFormat.explain} finds nothing. Also what the standalone
 * validators generated from the schemas call (src/types/generated/schema-validators.ts).
 */
export const AJV_FORMATS: Readonly<Record<string, { readonly type: 'string'; readonly validate: (value: string) => boolean }>> = Object.fromEntries(
  Object.entries(STRING_FORMATS).map(([name, format]) => [name, { type: 'string', validate: (value: string) => format.explain(value) === undefined }]),
);
