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

describe('IDEMPOTENCY_REFUSAL_TTL_SECONDS', () => {
  it('defaults to one hour and takes longer values', () => {
    expect(parseConfig({}).idempotencyRefusalTtlSeconds).toBe(3_600);
    expect(parseConfig({ IDEMPOTENCY_REFUSAL_TTL_SECONDS: '7200' }).idempotencyRefusalTtlSeconds).toBe(7_200);
  });

  it.each(['3599', '0', '-1', 'abc', '1.5', '86401'])('refuses %s, naming the variable', (value) => {
    expect(() => parseConfig({ IDEMPOTENCY_REFUSAL_TTL_SECONDS: value })).toThrow(/IDEMPOTENCY_REFUSAL_TTL_SECONDS/);
  });
});
