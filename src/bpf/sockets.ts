/**
 * Finding the socket a policy steers to: the listening (TCP) or bound (UDP)
 * socket on ADDR:PORT in a network namespace, the process that holds it, and
 * its socket cookie (the identity a sockmap reports back).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';
import { Netns } from './netns.js';
import { Pidfd } from './process.js';

const SOL_SOCKET = 1;
const SO_COOKIE = 57;
const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

/** A socket held by some process. */
export interface SocketRef {
  pid: number;
  fd: number;
  /** Socket inode, as in /proc/PID/fd/N -> socket:[INODE]. */
  inode: number;
}

/** The socket cookie of `fd` (SO_COOKIE). Throws ErrnoError. */
export function socketCookie(fd: number): bigint {
  const n = lib();
  const v = Buffer.alloc(8);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(8);
  if (n.getsockopt(fd, SOL_SOCKET, SO_COOKIE, v, len) < 0) throw new ErrnoError(n.errno(), 'getsockopt(SO_COOKIE)', `fd ${fd}`);
  return v.readBigUInt64LE(0);
}

/** Takes a duplicate of fd `ref.fd` of process `ref.pid` (the caller owns it). Throws ErrnoError. */
export function duplicateSocket(ref: { pid: number; fd: number }): OwnedFd {
  using pidfd = Pidfd.open(ref.pid);
  return pidfd.getfd(ref.fd, `socket fd ${ref.fd} of pid ${ref.pid}`);
}

/** Cookie of another process's socket. Throws ErrnoError (ESRCH, EBADF, ENOTSOCK). */
export function remoteSocketCookie(ref: { pid: number; fd: number }): bigint {
  using sock = duplicateSocket(ref);
  return socketCookie(sock.fd);
}

/** Socket inode behind /proc/PID/fd/FD, or undefined when it is no socket or gone. */
export function socketInodeOf(pid: number, fd: number): number | undefined {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function procHexAddress(address: string): string {
  if (isIPv4(address)) {
    const b = address.split('.').map(Number);
    return Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!]).toString('hex').toUpperCase();
  }
  // IPv6: four 32-bit words, each in host (little-endian) order.
  const bytes = ipv6Bytes(address);
  let out = '';
  for (let w = 0; w < 4; w++) out += Buffer.from(bytes.subarray(w * 4, w * 4 + 4)).reverse().toString('hex').toUpperCase();
  return out;
}

function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g as string, 16), i * 2));
  return out;
}

/** Reads /proc/net/{tcp,udp}{,6} as seen from inside `netnsPath` (or our own namespace). */
function readProcNet(netnsPath: string | undefined, file: string): string {
  const read = () => readFileSync(`/proc/thread-self/net/${file}`, 'utf8');
  if (!netnsPath) return read();
  using ns = Netns.open(netnsPath);
  return ns.enter(read);
}

/**
 * Inodes of the sockets listening (TCP) or bound unconnected (UDP) on
 * address:port in the namespace, including wildcard (0.0.0.0 / ::) binds of
 * the same port. Exact binds come first.
 */
export function listeningInodes(netnsPath: string | undefined, protocol: 'tcp' | 'udp', address: string, port: number): number[] {
  const v4 = isIPv4(address);
  const file = `${protocol}${v4 ? '' : '6'}`;
  const want = `${procHexAddress(address)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const any = `${procHexAddress(v4 ? '0.0.0.0' : '::')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const state = protocol === 'tcp' ? TCP_LISTEN : UDP_UNCONNECTED;
  const exact: number[] = [];
  const wildcard: number[] = [];
  for (const line of readProcNet(netnsPath, file).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== state) continue;
    if (f[1] === want) exact.push(Number(f[9]));
    else if (f[1] === any) wildcard.push(Number(f[9]));
  }
  return [...exact, ...wildcard].filter((i) => i > 0);
}

/**
 * Finds a process holding one of the socket inodes (the lowest pid, so the
 * choice is stable). Scans /proc/PID/fd. Returns undefined when none does.
 */
export function findSocketHolder(inodes: number[]): SocketRef | undefined {
  if (inodes.length === 0) return undefined;
  const wanted = new Map(inodes.map((i) => [`socket:[${i}]`, i]));
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited, or a kernel thread
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = wanted.get(target);
      if (inode !== undefined) return { pid, fd: Number(fd), inode };
    }
  }
  return undefined;
}
