/**
 * Configuration parsing (src/config.ts): what QUOTA_API_KEYS accepts.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';

describe('QUOTA_API_KEYS', () => {
  it("accepts the contract's own example, short keys included", () => {
    const config = parseConfig({ QUOTA_API_KEYS: 'admin:s3cr3t,client:abc123' });
    expect(config.apiKeys).toEqual([
      { role: 'admin', key: 's3cr3t' },
      { role: 'client', key: 'abc123' },
    ]);
  });

  it('keeps a key that contains a colon whole', () => {
    expect(parseConfig({ QUOTA_API_KEYS: 'client:a:b:c' }).apiKeys).toEqual([{ role: 'client', key: 'a:b:c' }]);
  });

  it.each([
    ['an unknown role', 'superuser:abcdefghij'],
    ['an empty key', 'admin:s3cr3t,client:'],
    ['a key with a space', 'admin:s3 cr3t'],
    ['no keys at all', ' , '],
  ])('refuses %s, naming the variable', (_name, value) => {
    expect(() => parseConfig({ QUOTA_API_KEYS: value })).toThrow(ConfigError);
    expect(() => parseConfig({ QUOTA_API_KEYS: value })).toThrow(/QUOTA_API_KEYS/);
  });
});

describe('Redis topology (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS)', () => {
  it('none given: the private redis-server', () => {
    expect(parseConfig({}).redis).toEqual({ kind: 'private' });
  });

  it('REDIS_URL: one node, REDIS_PASSWORD kept alongside', () => {
    expect(parseConfig({ REDIS_URL: 'redis://r1:6380/2', REDIS_PASSWORD: 'pw' }).redis).toEqual({
      kind: 'single',
      url: 'redis://r1:6380/2',
      password: 'pw',
    });
  });

  it('REDIS_CLUSTER_NODES: every seed parsed', () => {
    expect(parseConfig({ REDIS_CLUSTER_NODES: 'a:7000, b.example:7001,[::1]:7002' }).redis).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b.example', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      password: undefined,
    });
  });

  it('REDIS_SENTINELS with REDIS_SENTINEL_NAME', () => {
    expect(parseConfig({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'quota', REDIS_PASSWORD: 'pw' }).redis).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'quota',
      password: 'pw',
    });
  });

  it.each([
    [{ REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2' }, /REDIS_URL, REDIS_CLUSTER_NODES: give only one/],
    [{ REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' }, /REDIS_URL, REDIS_SENTINELS: give only one/],
    [{ REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' }, /REDIS_CLUSTER_NODES, REDIS_SENTINELS: give only one/],
    [{ REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2', REDIS_SENTINELS: 'c:3', REDIS_SENTINEL_NAME: 'm' }, /REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS/],
  ])('refuses more than one topology, naming them: %o', (env, message) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(message);
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: 'a' }, /REDIS_CLUSTER_NODES: "a" is not host:port/],
    [{ REDIS_CLUSTER_NODES: 'a:0' }, /REDIS_CLUSTER_NODES/],
    [{ REDIS_CLUSTER_NODES: ' , ' }, /REDIS_CLUSTER_NODES: no host:port given/],
    [{ REDIS_SENTINELS: 'a:26379' }, /REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/],
    [{ REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINEL_NAME: only with REDIS_SENTINELS/],
    [{ REDIS_PASSWORD: 'pw' }, /REDIS_PASSWORD: given without/],
    [{ REDIS_URL: 'http://a:1' }, /REDIS_URL/],
  ])('refuses a bad value, naming the variable: %o', (env, message) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(message);
  });
});

describe('REDIS_WAIT_REPLICAS / REDIS_WAIT_TIMEOUT_MS', () => {
  it('defaults: no replica asked, 500 ms', () => {
    expect(parseConfig({}).redisWait).toEqual({ replicas: 0, timeoutMs: 500 });
  });

  it('takes what is given', () => {
    expect(parseConfig({ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '1500' }).redisWait).toEqual({ replicas: 1, timeoutMs: 1500 });
  });

  it.each([
    [{ REDIS_WAIT_TIMEOUT_MS: '1501' }, /REDIS_WAIT_TIMEOUT_MS/],
    [{ REDIS_WAIT_TIMEOUT_MS: '0' }, /REDIS_WAIT_TIMEOUT_MS/],
    [{ REDIS_WAIT_REPLICAS: '-1' }, /REDIS_WAIT_REPLICAS/],
    [{ REDIS_WAIT_REPLICAS: 'one' }, /REDIS_WAIT_REPLICAS/],
  ])('refuses %o, naming the variable', (env, message) => {
    expect(() => parseConfig(env)).toThrow(message);
  });
});
