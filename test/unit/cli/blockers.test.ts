/**
 * `quota why`'s language hook: in another language than English, the
 * service's own blockerDetails (e.g. Chinese) win over the CLI's English
 * texts, code by code; a code the service does not explain still gets the
 * English text; in English the CLI's texts (with the numbers) are used.
 */
import type { Line, Pool } from '@quota-allocator/client';
import { explainBlockers } from '@quota-allocator/cli';
import { expect, it } from 'vitest';

const pool = {
  productId: 'p',
  minAmount: 100,
  maxAmount: null,
  available: 0,
  availableToAllTiers: 0,
  status: 'paused',
  pauseReason: '系统升级',
  resumeAt: '2026-06-18T12:00:00.000Z',
} as unknown as Pool;
const line = {
  productId: 'p',
  customerId: 'c',
  limit: 1_000,
  held: 0,
  drawn: 0,
  available: 1_000,
  drawable: 0,
  status: 'frozen',
  statusReason: 'risk review',
  tier: null,
  blockers: ['PRODUCT_PAUSED', 'ACCOUNT_FROZEN'],
} as unknown as Line;

it(
  'uses the service texts when the line has blockerDetails and the ' +
    'language is not English, else explains in English',
  () => {
    expect(explainBlockers(line, pool)).toEqual([
      {
        code: 'PRODUCT_PAUSED',
        source: 'cli',
        text: 'The product is paused (系统升级); draws open again at 2026-06-18T12:00:00.000Z.',
      },
      {
        code: 'ACCOUNT_FROZEN',
        source: 'cli',
        text: expect.stringMatching(/^The customer's account is frozen .*Reason: risk review\./),
      },
    ]);
    const withDetails = {
      ...line,
      blockerDetails: [
        {
          code: 'PRODUCT_PAUSED',
          title: '产品暂停中',
          detail: '系统升级，预计 2026-06-18 20:00 恢复',
          retryAt: '2026-06-18T12:00:00.000Z',
        },
      ],
    };
    expect(explainBlockers(withDetails, pool, 'en').map((e) => e.source)).toEqual(['cli', 'cli']);
    expect(explainBlockers(withDetails, pool, 'zh')).toEqual([
      {
        code: 'PRODUCT_PAUSED',
        source: 'service',
        text: '产品暂停中: 系统升级，预计 2026-06-18 20:00 恢复 (2026-06-18T12:00:00.000Z)',
      },
      expect.objectContaining({ code: 'ACCOUNT_FROZEN', source: 'cli' }),
    ]);
  },
);
