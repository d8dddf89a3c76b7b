/**
 * A TCP proxy in front of a Redis that can be told to hold every reply for a
 * while: a slow Redis, as opposed to one that does not answer at all (CLIENT
 * PAUSE) or is gone. Stops every socket it opened.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface DelayProxy {
  url: string;
  /** Hold each chunk Redis sends back this long (0: pass straight through). */
  setReplyDelay(ms: number): void;
  stop(): Promise<void>;
}

export async function startDelayProxy(target: { host: string; port: number }): Promise<DelayProxy> {
  let delayMs = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    // Replies leave in the order they came (a reordered RESP stream is garbage), each held delayMs.
    const queue: { chunk: Buffer; at: number }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.at <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (client.writable) client.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - Date.now());
    };
    upstream.on('data', (chunk: Buffer) => {
      queue.push({ chunk, at: Date.now() + delayMs });
      if (!timer) pump();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setReplyDelay(ms) {
      delayMs = ms;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
