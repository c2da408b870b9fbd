/**
 * A cheap look at one live dispatcher for the daemon's drift probe: whether
 * its link is still attached, and what its sockmap slots hold. Unlike
 * observeDispatcher it reads no binding or record map, so it costs a few
 * syscalls whatever the size of the policies. Every fd it opens is closed
 * before it returns.
 */
import { join } from 'node:path';
import { observeSockets } from './store.js';
import { Link } from '../../bpf/link.js';

/** What {@link probeDispatcher} saw. */
export interface DispatcherProbe {
  /** The pinned link (null when its pin is missing or unreadable). */
  link: { id: number; progId: number; attached: boolean } | null;
  /** Socket cookie per destination id (null = empty slot). */
  sockets: Record<number, string | null>;
}

/** Probes the dispatcher in `dir` for the sockets at `destIds`. Never throws for missing pins. */
export function probeDispatcher(dir: string, destIds: number[]): DispatcherProbe {
  return { link: probeLink(dir), sockets: Object.fromEntries(observeSockets(dir, destIds)) };
}

function probeLink(dir: string): DispatcherProbe['link'] {
  try {
    using l = Link.fromPin(join(dir, 'link'));
    const i = l.info();
    return { id: i.id, progId: i.progId, attached: i.target.attached && i.target.kind === 'netns' };
  } catch {
    return null;
  }
}
