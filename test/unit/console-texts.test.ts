/**
 * The console's blocker explanations (console/src/blockerTexts.ts), without
 * a browser: the service's blockerDetails win when present; otherwise every
 * blocker code the contract lists gets its own text in English and Chinese,
 * carrying the line's statusReason or the pool's pause reason and reopening.
 */
import type { Line, Pool } from '@quota-allocator/client';
import { describe, expect, it } from 'vitest';
import { explainBlockers } from '../../console/src/blockerTexts.js';
import { BLOCKER_CODES } from '../../src/errors/catalogue.js';

const CJK = /[\u4e00-\u9fff]/;

const line = (over: Partial<Line> = {}): Line => ({
  productId: 'p',
  customerId: 'c',
  limit: 5_000,
  status: 'frozen',
  statusReason: 'risk review 42',
  tier: null,
  held: 0,
  drawn: 0,
  settling: 0,
  available: 5_000,
  drawable: 0,
  blockers: ['ACCOUNT_FROZEN'],
  ...over,
});
const pool = {
  minAmount: 100,
  available: 0,
  pauseReason: 'bank maintenance',
  resumeAt: '2026-06-18T12:00:00.000Z',
} as Pool;

describe('explainBlockers', () => {
  it("prefers the service's blockerDetails, in whatever language the service answered", () => {
    const withDetails = line({
      blockerDetails: [{ code: 'ACCOUNT_FROZEN', title: '账户已冻结', detail: '风控审核：risk review 42' }],
    });
    expect(explainBlockers(withDetails, pool, 'zh-CN')).toEqual([
      { code: 'ACCOUNT_FROZEN', title: '账户已冻结', detail: '风控审核：risk review 42', source: 'service' },
    ]);
    // A blocker the service did not explain falls back to the console's text.
    const partial = line({
      blockers: ['PRODUCT_PAUSED', 'ACCOUNT_FROZEN'],
      blockerDetails: [{ code: 'ACCOUNT_FROZEN', title: 'Frozen', detail: 'risk review 42' }],
    });
    expect(explainBlockers(partial, pool, 'en').map((e) => e.source)).toEqual(['console', 'service']);
  });

  it('explains every blocker code in English and in Chinese with its own text', () => {
    for (const code of BLOCKER_CODES) {
      const [en] = explainBlockers(line({ blockers: [code] }), pool, 'en');
      const [zh] = explainBlockers(line({ blockers: [code] }), pool, 'zh-CN');
      expect(en!.title, code).not.toBe(code);
      expect(`${en!.title} ${en!.detail}`, code).not.toMatch(CJK);
      expect(`${zh!.title} ${zh!.detail}`, code).toMatch(CJK);
      expect(en!.source).toBe('console');
    }
  });

  it("carries the account's reason and the pause's reason and reopening time", () => {
    const frozen = explainBlockers(line(), pool, 'zh-CN')[0]!;
    expect(frozen.detail).toContain('risk review 42');
    const paused = explainBlockers(
      line({ status: 'active', statusReason: null, blockers: ['PRODUCT_PAUSED'] }),
      pool,
      'en',
    )[0]!;
    expect(paused.detail).toContain('bank maintenance');
    expect(paused.detail).toContain('2026-06-18 12:00:00Z');
  });
});
