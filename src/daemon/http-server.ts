/**
 * The daemon's small HTTP server: `GET /metrics` (Prometheus text format) and
 * `GET /healthz` (200 when the last pass succeeded, 503 otherwise, with a
 * one-line body). Nothing else is served.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** Where to listen. */
export interface ListenAddress {
  /** Host or literal address, without brackets; '' = every address. */
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (every address). Port 0 picks
 * a free port.
 * @throws RangeError explaining the expected form.
 */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (!m || port > 65535)
    throw new RangeError(`"${text}" is not a listen address: write HOST:PORT, [IPV6]:PORT or :PORT, e.g. 127.0.0.1:9890`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** Health as /healthz reports it. */
export interface Health {
  ok: boolean;
  message: string;
}

/** What the server serves. */
export interface HttpServerHandlers {
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): Health;
}

/** The request listener: routes /metrics and /healthz to `handlers`. */
export function httpHandler(handlers: HttpServerHandlers): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      const h = handlers.health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${h.message}\n`);
      return;
    }
    if (path === '/metrics') {
      handlers.metrics().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot collect metrics: ${(err as Error).message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  };
}

/**
 * Starts listening; resolves with the server and the address it got (the
 * caller owns the server and closes it). Rejects when the address cannot be
 * bound (EADDRINUSE, EACCES, …).
 */
export async function startHttpServer(address: ListenAddress, handlers: HttpServerHandlers): Promise<{ server: Server; bound: string }> {
  const server = createServer(httpHandler(handlers));
  server.keepAliveTimeout = 5000;
  server.listen(address.port, address.host || undefined);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  const a = server.address() as AddressInfo;
  return { server, bound: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}` };
}
