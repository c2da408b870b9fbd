/**
 * The foundation demo: loads the sk_lookup dispatcher, attaches it to a
 * throwaway network namespace, steers one TCP connection from an extra port
 * to a real listening server, shows what the kernel reports, and removes
 * every object it made. The reconciler replaces this as the main job later.
 */
import { join } from 'node:path';
import {
  BpfMap,
  Link,
  Netns,
  Pidfd,
  Program,
  ensureBpffs,
  listPins,
  loadObject,
  removePinTree,
  unpin,
} from '../bpf/index.js';
import { DISPATCHER_OBJECT, encodeBindingKey, encodeBindingValue, u32Key } from '../bpf/dispatcher-layout.js';
import { NetnsSandbox } from '../sandbox/netns-sandbox.js';

/** Result of a demo run, for tests and the CLI. */
export interface DemoResult {
  direct: string;
  steered: string;
  afterCleanup: string;
  linkId: number;
  progId: number;
}

/**
 * Runs the demo. `say` receives one line per step. Cleans up in `finally`
 * whatever happens; throws the first error it meets.
 */
export async function runSteerDemo(say: (line: string) => void, bpffsRoot = '/sys/fs/bpf'): Promise<DemoResult> {
  const pinDir = join(bpffsRoot, `ebpf-policy-demo-${process.pid}`);
  if (ensureBpffs(pinDir)) say(`mounted bpffs at /sys/fs/bpf`);
  const sandbox = NetnsSandbox.create('demo');
  say(`created network namespace ${sandbox.name}`);
  try {
    const server = await sandbox.startServer('127.0.0.1', 8080);
    say(`server pid ${server.pid} listens on 127.0.0.1:8080 (socket fd ${server.fd} in that process)`);
    const direct = sandbox.connect('127.0.0.1', 8080);
    say(`connect 127.0.0.1:8080 -> ${direct}`);
    say(`connect 127.0.0.1:8081 before steering -> ${sandbox.connect('127.0.0.1', 8081)}`);

    let linkId: number;
    let progId: number;
    {
      using obj = loadObject(DISPATCHER_OBJECT);
      const prog = obj.program('dispatcher');
      progId = prog.info().id;
      for (const [name, m] of obj.maps) m.pin(join(pinDir, `map_${name}`));
      prog.pin(join(pinDir, 'prog_dispatcher'));
      say(`loaded ${DISPATCHER_OBJECT}: program id ${progId}, maps ${[...obj.maps.keys()].join(', ')}, pinned under ${pinDir}`);

      using netns = Netns.open(sandbox.path);
      using link = Link.attachSkLookup(prog, netns.fd);
      link.pin(join(pinDir, 'link_sk_lookup'));
      const info = link.info();
      linkId = info.id;
      say(`attached sk_lookup link id ${info.id} to netns inode ${netns.inode} (kernel reports ${JSON.stringify(info.target)})`);

      using pidfd = Pidfd.open(server.pid);
      using sock = pidfd.getfd(server.fd);
      obj.map('sockets').updateSocket(u32Key(1), sock.fd);
      obj.map('bindings').update(
        encodeBindingKey({ protocol: 'tcp', address: '127.0.0.1', prefixLength: 32, port: 8081 }),
        encodeBindingValue(1, 0),
      );
      say(`took the server's socket with pidfd_getfd, stored it in the sockmap, bound tcp 127.0.0.1:8081 to it`);
    }

    const steered = sandbox.connect('127.0.0.1', 8081);
    say(`connect 127.0.0.1:8081 -> ${steered}`);
    {
      // Reopen by pin, as a later run of the tool would, and read the counters.
      using hits = BpfMap.fromPin(join(pinDir, 'map_binding_hits'));
      using prog = Program.fromPin(join(pinDir, 'prog_dispatcher'));
      const v = hits.lookup(u32Key(0));
      let total = 0n;
      for (let off = 0; v && off < v.length; off += 8) total += v.readBigUInt64LE(off);
      say(`reopened by pin: program ${prog.info().name} id ${prog.info().id}, binding 0 hit ${total} time(s)`);
    }

    for (const pin of listPins(pinDir)) unpin(pin);
    const afterCleanup = sandbox.connect('127.0.0.1', 8081);
    say(`unpinned everything; connect 127.0.0.1:8081 -> ${afterCleanup}`);
    return { direct, steered, afterCleanup, linkId, progId };
  } finally {
    removePinTree(pinDir);
    await sandbox.destroy();
    say(`removed ${pinDir} and namespace ${sandbox.name}`);
  }
}
