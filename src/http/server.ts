/**
 * The HTTP server with timeouts that fit the contract. Node's defaults
 * (headers 60 s, whole request 300 s, checked every 30 s) let idle or slow
 * sockets sit for minutes; here headers must arrive within BODY_TIMEOUT_MS
 * (Node answers a plain 408 and closes), bodies are bounded by the routes'
 * own timers (408 REQUEST_TIMEOUT as problem+json; a bulk import only when
 * it stalls), so the whole-request timeout is off: it would cut a long bulk
 * import that is still streaming.
 *
 * The listen backlog is LISTEN_BACKLOG rather than Node's 511: a burst of
 * more connections than the backlog at once (1,500 slow uploads, a launch
 * peak) overflowed it, and Linux then answered part of the burst with SYN
 * cookies whose connections it could not queue; their next segment was reset
 * by the kernel before Node ever saw them (in runs of 1,500 stalled bodies,
 * 87 to 239 reset without an answer, exactly as many as SYN cookies sent).
 */
import { createServer, type Server } from 'node:http';
import type { RequestListener } from 'node:http';

/**
 * Connections the kernel may hold waiting for Node to accept them (and, on
 * Linux, handshakes in progress). Linux caps it at net.core.somaxconn (4096
 * by default since 5.4; raise that sysctl too for a larger backlog).
 */
export const LISTEN_BACKLOG = 4_096;

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
    server.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
