/**
 * The HTTP server with timeouts that fit the contract. Node's defaults
 * (headers 60 s, whole request 300 s, checked every 30 s) let idle or slow
 * sockets sit for minutes; here headers must arrive within BODY_TIMEOUT_MS
 * (Node answers a plain 408 and closes), bodies are bounded by the routes'
 * own timers (408 REQUEST_TIMEOUT as problem+json; a bulk import only when
 * it stalls), so the whole-request timeout is off: it would cut a long bulk
 * import that is still streaming.
 */
import { createServer, type Server } from 'node:http';
import type { RequestListener } from 'node:http';

export interface ListenOptions {
  port: number;
  host: string;
  bodyTimeoutMs: number;
}

export function listen(app: RequestListener, options: ListenOptions): Promise<Server> {
  const server = createServer(
    {
      headersTimeout: options.bodyTimeoutMs,
      requestTimeout: 0,
      // How often Node checks headersTimeout (default 30 s would make a 1 s timeout 31 s).
      connectionsCheckingInterval: Math.min(1_000, options.bodyTimeoutMs),
    },
    app,
  );
  return new Promise<Server>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
