/**
 * The reconciler's Resolver backed by the system: namespace inodes, the
 * process holding a target socket (via /proc and pidfd_getfd), and the
 * dispatcher program's tag.
 */
import type { Resolver } from './desired.js';
import type { ResolvedTarget } from './model.js';
import { dispatcherObjectTag } from './store.js';
import { ErrnoError } from '../../bpf/errors.js';
import { OWN_NETNS, resolveNetnsKey } from '../../bpf/netns.js';
import { findSocketHolder, listeningInodes, remoteSocketCookie, socketInodeOf } from '../../bpf/sockets.js';

/**
 * A Resolver for the dispatcher object at `objectPath`. It memoizes within
 * its lifetime (one reconcile pass): many policies naming the same target
 * cost one /proc scan and one pidfd_getfd.
 */
export function systemResolver(objectPath: string): Resolver {
  const targets = new Map<string, ResolvedTarget>();
  const namespaces = new Map<string, ReturnType<Resolver['netnsKey']>>();
  const inner = uncachedResolver(objectPath);
  const resolver: Resolver = {
    netnsKey(path) {
      let r = namespaces.get(path);
      if (!r) {
        r = inner.netnsKey(path);
        namespaces.set(path, r);
      }
      return r;
    },
    dispatcherTag: inner.dispatcherTag,
    target(netnsPath, protocol, target) {
      const key = targetKey(netnsPath, protocol, target);
      let r = targets.get(key);
      if (!r) {
        r = inner.target(netnsPath, protocol, target);
        targets.set(key, r);
      }
      return r;
    },
  };
  return resolver;
}

/**
 * A memo key of a target in a namespace, kept by target object (normalized
 * targets are never mutated, and each belongs to one policy, so to one
 * namespace and protocol): a pass with 10,000 policies builds no key again.
 */
function targetKey(netnsPath: string, protocol: string, target: Parameters<Resolver['target']>[2]): string {
  const known = targetKeys.get(target);
  if (known !== undefined && known.netnsPath === netnsPath && known.protocol === protocol) return known.key;
  const key = `${netnsPath}\u0000${protocol}\u0000${JSON.stringify(target)}`;
  targetKeys.set(target, { netnsPath, protocol, key });
  return key;
}
const targetKeys = new WeakMap<object, { netnsPath: string; protocol: string; key: string }>();

/**
 * The process and fd found holding a listen target's socket, by namespace
 * and target, kept across passes: finding it scans every fd of every process
 * (/proc/PID/fd), the largest fixed cost of a pass. It is reused only while
 * the namespace still lists that socket inode as listening (read on every
 * pass) and the fd still refers to it, so a restarted server is found again;
 * the inode identifies the socket, so its cookie is the one taken before.
 */
const knownHolders = new Map<string, { pid: number; fd: number; inode: number; cookie: string; result: ResolvedTarget }>();
const MAX_KNOWN_HOLDERS = 4096;

function uncachedResolver(objectPath: string): Resolver {
  return {
    netnsKey: resolveNetnsKey,
    target(netnsPath, protocol, target): ResolvedTarget {
      try {
        let ref: { pid: number; fd: number };
        let what: string;
        if (target.type === 'socket') {
          what = `fd ${target.fd} of pid ${target.pid}`;
          if (socketInodeOf(target.pid, target.fd) === undefined)
            return { ok: false, reason: `${what} is not a socket (or the process is gone)` };
          ref = target;
        } else {
          what = `${protocol} ${target.address}:${target.port}`;
          const inodes = listeningInodes(netnsPath === OWN_NETNS ? undefined : netnsPath, protocol, target.address, target.port);
          if (inodes.length === 0)
            return { ok: false, reason: `nothing ${protocol === 'tcp' ? 'listens' : 'is bound'} on ${target.address}:${target.port} in ${netnsPath}` };
          const key = `${netnsPath}\u0000${what}`;
          const known = knownHolders.get(key);
          // The holder found last time, if it still holds one of these sockets: the same socket inode has the same cookie.
          if (known !== undefined && inodes.includes(known.inode) && socketInodeOf(known.pid, known.fd) === known.inode) return known.result;
          knownHolders.delete(key);
          const holder = findSocketHolder(inodes);
          if (!holder) return { ok: false, reason: `no process holds the socket on ${target.address}:${target.port}` };
          const cookie = remoteSocketCookie(holder).toString();
          if (knownHolders.size >= MAX_KNOWN_HOLDERS) knownHolders.clear();
          const result: ResolvedTarget = { ok: true, pid: holder.pid, fd: holder.fd, cookie };
          knownHolders.set(key, { ...holder, cookie, result });
          return result;
        }
        return { ok: true, pid: ref.pid, fd: ref.fd, cookie: remoteSocketCookie(ref).toString() };
      } catch (err) {
        const msg = err instanceof ErrnoError ? err.message : String(err);
        const hint =
          err instanceof ErrnoError && err.code === 'EPERM' && err.operation === 'pidfd_getfd'
            ? " (taking a socket from another user's process needs CAP_SYS_PTRACE)"
            : '';
        return { ok: false, reason: `cannot take the target socket: ${msg}${hint}` };
      }
    },
    dispatcherTag: () => dispatcherObjectTag(objectPath),
  };
}
