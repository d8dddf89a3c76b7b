/**
 * Configuration parsing (src/config.ts): what QUOTA_API_KEYS accepts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config.js';

describe('QUOTA_API_KEYS', () => {
  it("accepts the contract's own example, short keys included", () => {
    const config = parseConfig({ QUOTA_API_KEYS: 'admin:s3cr3t,client:abc123' });
    expect(config.apiKeys).toEqual([
      { role: 'admin', name: 'admin-1', key: 's3cr3t' },
      { role: 'client', name: 'client-1', key: 'abc123' },
    ]);
  });

  it('reads role:name:key (a key contains no colon: a fourth part is refused)', () => {
    expect(
      parseConfig({ QUOTA_API_KEYS: 'client:android-app:abc123,client:web:def456,admin:ops.alice:s3cr3t' }).apiKeys,
    ).toEqual([
      { role: 'client', name: 'android-app', key: 'abc123' },
      { role: 'client', name: 'web', key: 'def456' },
      { role: 'admin', name: 'ops.alice', key: 's3cr3t' },
    ]);
    expect(() => parseConfig({ QUOTA_API_KEYS: 'client:a:b:c' })).toThrow(/QUOTA_API_KEYS/);
  });

  it.each([
    ['an unknown role', 'superuser:abcdefghij'],
    ['an empty key', 'admin:s3cr3t,client:'],
    ['a key with a space', 'admin:s3 cr3t'],
    ['no keys at all', ' , '],
    ['a name used twice', 'client:app:k1,client:app:k2'],
    ['a bad name', 'client:my app:k1'],
  ])('refuses %s, naming the variable', (_name, value) => {
    expect(() => parseConfig({ QUOTA_API_KEYS: value })).toThrow(ConfigError);
    expect(() => parseConfig({ QUOTA_API_KEYS: value })).toThrow(/QUOTA_API_KEYS/);
  });
});

describe('IDEMPOTENCY_REFUSAL_TTL_SECONDS', () => {
  it('defaults to one hour and takes longer values', () => {
    expect(parseConfig({}).idempotencyRefusalTtlSeconds).toBe(3_600);
    expect(parseConfig({ IDEMPOTENCY_REFUSAL_TTL_SECONDS: '7200' }).idempotencyRefusalTtlSeconds).toBe(7_200);
  });

  it.each(['3599', '0', '-1', 'abc', '1.5', '86401'])('refuses %s, naming the variable', (value) => {
    expect(() => parseConfig({ IDEMPOTENCY_REFUSAL_TTL_SECONDS: value })).toThrow(/IDEMPOTENCY_REFUSAL_TTL_SECONDS/);
  });
});

describe('HOST, BODY_TIMEOUT_MS and *_FILE (issue 10)', () => {
  it(
    'listens on 127.0.0.1 with the development keys unless HOST ' + 'says otherwise; on every interface with real keys',
    () => {
      expect(parseConfig({}).host).toBe('127.0.0.1');
      expect(parseConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
      expect(parseConfig({ QUOTA_API_KEYS: 'admin:s3cr3t' }).host).toBe('0.0.0.0');
      expect(parseConfig({ QUOTA_API_KEYS: 'admin:s3cr3t', HOST: '10.0.0.5' }).host).toBe('10.0.0.5');
    },
  );

  it('PUBLIC_URL (the OpenAPI servers entry) is optional, and an http(s) URL when given', () => {
    expect(parseConfig({}).publicUrl).toBeUndefined();
    expect(parseConfig({ PUBLIC_URL: 'https://quota.bank.example/' }).publicUrl).toBe('https://quota.bank.example/');
    expect(() => parseConfig({ PUBLIC_URL: 'quota.bank' })).toThrow(/PUBLIC_URL/);
    expect(() => parseConfig({ PUBLIC_URL: 'ftp://quota.bank' })).toThrow(/PUBLIC_URL/);
  });

  it('BODY_TIMEOUT_MS defaults to 10 s and is checked', () => {
    expect(parseConfig({}).bodyTimeoutMs).toBe(10_000);
    expect(parseConfig({ BODY_TIMEOUT_MS: '500' }).bodyTimeoutMs).toBe(500);
    expect(() => parseConfig({ BODY_TIMEOUT_MS: 'soon' })).toThrow(/BODY_TIMEOUT_MS/);
  });

  it(
    'reads secrets from *_FILE (one trailing newline dropped); a ' +
      'keys file may hold one key per line with comments',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'qa-config-'));
      try {
        writeFileSync(
          join(dir, 'keys'),
          '# rotated 2026-12-01\nadmin:ops:s3cr3t\nclient:android-app:abc123  # the app\n\n',
        );
        writeFileSync(join(dir, 'secret'), 'a-settlement-secret-of-32-chars!\n');
        const config = parseConfig({
          QUOTA_API_KEYS_FILE: join(dir, 'keys'),
          SETTLEMENT_URL: 'http://ledger.internal/settle',
          SETTLEMENT_SECRET_FILE: join(dir, 'secret'),
        });
        expect(config.apiKeys).toEqual([
          { role: 'admin', name: 'ops', key: 's3cr3t' },
          { role: 'client', name: 'android-app', key: 'abc123' },
        ]);
        expect(config.apiKeysFile).toBe(join(dir, 'keys'));
        expect(config.usingDevelopmentKeys).toBe(false);
        expect(config.settlementSecret).toBe('a-settlement-secret-of-32-chars!');
        // Production accepts keys from a file.
        expect(parseConfig({ NODE_ENV: 'production', QUOTA_API_KEYS_FILE: join(dir, 'keys') }).apiKeys).toHaveLength(2);
        expect(() => parseConfig({ QUOTA_API_KEYS_FILE: join(dir, 'missing') })).toThrow(/QUOTA_API_KEYS_FILE/);
        expect(() => parseConfig({ QUOTA_API_KEYS_FILE: join(dir, 'keys'), QUOTA_API_KEYS: 'admin:x' })).toThrow(
          /only one/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('webhooks', () => {
  it(
    'are off without WEBHOOK_URL; with it, WEBHOOK_SECRET (16+ ' + 'characters, or WEBHOOK_SECRET_FILE) is required',
    () => {
      expect(parseConfig({}).webhooks).toBeUndefined();
      expect(() => parseConfig({ WEBHOOK_URL: 'https://hooks.example/quota' })).toThrow(/WEBHOOK_SECRET: required/);
      expect(() => parseConfig({ WEBHOOK_URL: 'https://hooks.example/quota', WEBHOOK_SECRET: 'short' })).toThrow(
        /WEBHOOK_SECRET/,
      );
      expect(() => parseConfig({ WEBHOOK_URL: 'ftp://hooks.example', WEBHOOK_SECRET: 'a-webhook-secret-16+' })).toThrow(
        /WEBHOOK_URL/,
      );
      expect(
        parseConfig({
          WEBHOOK_URL: 'https://hooks.example/quota',
          WEBHOOK_SECRET: 'a-webhook-secret-16+',
          WEBHOOK_CONCURRENCY: '4',
        }).webhooks,
      ).toEqual({
        url: 'https://hooks.example/quota',
        secret: 'a-webhook-secret-16+',
        timeoutMs: 5_000,
        backoffMs: 1_000,
        concurrency: 4,
        relayIntervalMs: 1_000,
        lockMs: 30_000,
      });
      const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
      try {
        writeFileSync(join(dir, 'hook-secret'), 'a-webhook-secret-from-a-file\n');
        expect(
          parseConfig({ WEBHOOK_URL: 'http://127.0.0.1:9/h', WEBHOOK_SECRET_FILE: join(dir, 'hook-secret') }).webhooks
            ?.secret,
        ).toBe('a-webhook-secret-from-a-file');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
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
    expect(
      parseConfig({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'quota', REDIS_PASSWORD: 'pw' }).redis,
    ).toEqual({
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
    [
      { REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' },
      /REDIS_URL, REDIS_SENTINELS: give only one/,
    ],
    [
      { REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_NAME: 'm' },
      /REDIS_CLUSTER_NODES, REDIS_SENTINELS: give only one/,
    ],
    [
      { REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2', REDIS_SENTINELS: 'c:3', REDIS_SENTINEL_NAME: 'm' },
      /REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS/,
    ],
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
    expect(parseConfig({ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '1500' }).redisWait).toEqual({
      replicas: 1,
      timeoutMs: 1500,
    });
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
