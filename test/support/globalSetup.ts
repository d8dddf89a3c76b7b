/** One private redis-server for the whole run; every test works in its own products. */
import type { TestProject } from 'vitest/node';
import { startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';

let server: RedisServerHandle | undefined;

export async function setup(project: TestProject) {
  server = await startRedisServer();
  project.provide('redisUrl', server.url);
}

export async function teardown() {
  await server?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
