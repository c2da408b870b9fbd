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
 * the same port. Exact binds come first. Asks the kernel with a sock_diag
 * dump of those sockets only; where sock_diag cannot answer (no inet_diag),
 * reads /proc/net/{tcp,udp}{,6}, which walks every socket of the namespace.
 */
export function listeningInodes(netnsPath: string | undefined, protocol: 'tcp' | 'udp', address: string, port: number): number[] {
  try {
    return listeningInodesFromDiag(netnsPath, protocol, address, port);
  } catch {
    return listeningInodesFromProc(netnsPath, protocol, address, port);
  }
}

/** listeningInodes from a sock_diag dump only. Throws ErrnoError or Error when sock_diag cannot answer. */
export function listeningInodesFromDiag(netnsPath: string | undefined, protocol: 'tcp' | 'udp', address: string, port: number): number[] {
  const sockets = diagSockets(netnsPath, protocol, isIPv4(address));
  const want = addressBytes(address);
  const exact: number[] = [];
  const wildcard: number[] = [];
  for (const s of sockets) {
    if (s.port !== port || s.inode === 0) continue;
    if (s.address.equals(want)) exact.push(s.inode);
    else if (s.address.every((b) => b === 0)) wildcard.push(s.inode);
  }
  return [...exact, ...wildcard];
}

/** The address's bytes in network order (4 or 16). */
function addressBytes(address: string): Buffer {
  return isIPv4(address) ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
}

/** A socket as sock_diag reports it: local address (network order), local port, inode. */
interface DiagSocket {
  address: Buffer;
  port: number;
  inode: number;
}

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const TCP_STATE_LISTEN = 10;
const TCP_STATE_CLOSE = 7; // an unconnected UDP socket
const NLMSG_HDRLEN = 16;
const INET_DIAG_REQ_V2_LEN = 56;

/**
 * Listening TCP (or unconnected UDP) sockets of one family in a namespace,
 * from a NETLINK_SOCK_DIAG dump (inet_diag_req_v2) asking for that one state:
 * the kernel walks its listening hash only, not every connection. The
 * netlink socket is opened inside the namespace (a sock_diag socket reports
 * the namespace it was created in). Throws ErrnoError or Error.
 */
function diagSockets(netnsPath: string | undefined, protocol: 'tcp' | 'udp', v4: boolean): DiagSocket[] {
  const n = lib();
  const open = (): number => n.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  let fd: number;
  if (netnsPath) {
    using ns = Netns.open(netnsPath);
    fd = ns.enter(open);
  } else fd = open();
  if (fd < 0) throw new ErrnoError(n.errno(), 'socket(NETLINK_SOCK_DIAG)', netnsPath ?? 'own namespace');
  using sock = new OwnedFd(fd, 'sock_diag socket');
  const req = Buffer.alloc(NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN);
  req.writeUInt32LE(req.length, 0);
  req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  req.writeUInt32LE(1, 8); // sequence number
  req.writeUInt8(v4 ? AF_INET : AF_INET6, 16);
  req.writeUInt8(protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, 17);
  req.writeUInt32LE(1 << (protocol === 'tcp' ? TCP_STATE_LISTEN : TCP_STATE_CLOSE), 20);
  if (Number(n.send(sock.fd, req, req.length, 0)) !== req.length) throw new ErrnoError(n.errno(), 'send(sock_diag)', 'dump request');
  const out: DiagSocket[] = [];
  const buf = Buffer.alloc(32 << 10);
  const addrLen = v4 ? 4 : 16;
  for (;;) {
    const got = Number(n.recv(sock.fd, buf, buf.length, 0));
    if (got < 0) throw new ErrnoError(n.errno(), 'recv(sock_diag)', 'dump');
    if (got === 0) throw new Error('sock_diag: the dump ended without NLMSG_DONE');
    for (let at = 0; at + NLMSG_HDRLEN <= got; ) {
      const len = buf.readUInt32LE(at);
      const type = buf.readUInt16LE(at + 4);
      if (len < NLMSG_HDRLEN || at + len > got) throw new Error('sock_diag: truncated message');
      if (type === NLMSG_DONE) return out;
      if (type === NLMSG_ERROR) throw new ErrnoError(-buf.readInt32LE(at + NLMSG_HDRLEN), 'sock_diag', 'dump');
      if (type === SOCK_DIAG_BY_FAMILY && len >= NLMSG_HDRLEN + 72) {
        const m = at + NLMSG_HDRLEN; // struct inet_diag_msg
        out.push({ address: Buffer.from(buf.subarray(m + 8, m + 8 + addrLen)), port: buf.readUInt16BE(m + 4), inode: buf.readUInt32LE(m + 68) });
      }
      at += (len + 3) & ~3;
    }
  }
}

/** listeningInodes from /proc/net/{tcp,udp}{,6}: what sock_diag says, read the slow way. */
export function listeningInodesFromProc(netnsPath: string | undefined, protocol: 'tcp' | 'udp', address: string, port: number): number[] {
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
