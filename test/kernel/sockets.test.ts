/**
 * Finding a target's socket: the sock_diag dump of listening (TCP) and
 * unconnected (UDP) sockets inside a namespace finds exactly what
 * /proc/net/{tcp,udp}{,6} lists, exact binds before wildcard ones, and
 * notices a socket that went away.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { listeningInodes, listeningInodesFromDiag, listeningInodesFromProc } from '../../src/bpf/sockets.js';
import { killAndWait } from '../../src/sandbox/bounded-wait.js';
import { kernelTest } from './harness.js';

// Binds every socket it is given (tcp/udp, address, port), prints "ready", and waits.
const BIND_PY = `
import socket, sys
socks = []
for spec in sys.argv[1:]:
    proto, host, port = spec.split(',')
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, int(port)))
    if proto == 'tcp':
        s.listen(8)
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
`;

kernelTest('sock_diag finds the listening and bound sockets /proc/net lists (TCP and UDP, IPv4 and IPv6, exact and wildcard), and sees one go away', async ({ sandbox }) => {
  sandbox.exec(['ip', 'link', 'set', 'lo', 'up']);
  const specs = ['tcp,127.0.0.1,8080', 'tcp,0.0.0.0,8080', 'tcp,::1,8081', 'tcp,::,8082', 'udp,127.0.0.1,5353', 'udp,0.0.0.0,5353', 'udp,::1,5354', 'tcp,127.0.0.2,8083'];
  const child = sandbox.spawn(['python3', '-c', BIND_PY, ...specs], { stdin: 'pipe' });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = once(createInterface({ input: child.stdout! }), 'line');
  const exited = once(child, 'exit').then(() => [`exited: ${stderr}`]);
  const [line] = (await Promise.race([ready, exited])) as [string];
  assert.equal(line, 'ready');
  try {
    const cases: Array<['tcp' | 'udp', string, number, number]> = [
      ['tcp', '127.0.0.1', 8080, 2],
      ['tcp', '127.0.0.3', 8080, 1], // only the wildcard
      ['tcp', '::1', 8081, 1],
      ['tcp', '::1', 8082, 1],
      ['tcp', '127.0.0.1', 8083, 0],
      ['udp', '127.0.0.1', 5353, 2],
      ['udp', '::1', 5354, 1],
      ['udp', '127.0.0.1', 8080, 0],
    ];
    for (const [protocol, address, port, count] of cases) {
      const diag = listeningInodesFromDiag(sandbox.path, protocol, address, port);
      const proc = listeningInodesFromProc(sandbox.path, protocol, address, port);
      assert.deepEqual(diag, proc, `${protocol} ${address}:${port}: sock_diag and /proc/net agree`);
      assert.equal(diag.length, count, `${protocol} ${address}:${port}: ${count} sockets`);
    }
    // Exact binds first.
    const [exact] = listeningInodes(sandbox.path, 'tcp', '127.0.0.1', 8080);
    assert.deepEqual(listeningInodes(sandbox.path, 'tcp', '127.0.0.2', 8083), listeningInodesFromProc(sandbox.path, 'tcp', '127.0.0.2', 8083));
    assert.ok(!listeningInodes(sandbox.path, 'tcp', '127.0.0.3', 8080).includes(exact!), 'the exact bind of another address is not a match');
    // Our own namespace has none of the sandbox's sockets.
    assert.deepEqual(listeningInodesFromDiag(undefined, 'tcp', '127.0.0.2', 8083), listeningInodesFromProc(undefined, 'tcp', '127.0.0.2', 8083));
  } finally {
    await killAndWait(child, 'the socket holder');
  }
  assert.deepEqual(listeningInodesFromDiag(sandbox.path, 'tcp', '127.0.0.1', 8080), [], 'closed sockets are gone');
  assert.deepEqual(listeningInodesFromDiag(sandbox.path, 'udp', '127.0.0.1', 5353), []);
  assert.deepEqual(listeningInodes(sandbox.path, 'tcp', '127.0.0.1', 8080), []);
});
