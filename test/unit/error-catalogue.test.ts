/**
 * The error catalogue (src/errors/catalogue.ts) against what copies it:
 * the blocker order of lua/includes/views.lua, the README's errors table,
 * the metric labels, and its own texts (both languages render for every
 * code, with or without context). Pure checks, no Redis.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BLOCKER_CODES,
  CATALOGUE,
  ERROR_CODES,
  OPERATION_IDS,
  textsOf,
  type CodeEntry,
  type ErrorCode,
} from '../../src/errors/catalogue.js';
import { DECISION_OPERATIONS } from '../../src/engine/quotaEngine.js';
import { createMetrics } from '../../src/metrics.js';

const entries = Object.entries(CATALOGUE) as [ErrorCode, CodeEntry][];

describe('the blocker order', () => {
  it(
    "is views.lua's: the codes blockersFor (and productBlockers, " +
      'LINE_STATUS_BLOCKER) produce, in the order they are checked',
    () => {
      const lua = readFileSync('lua/includes/views.lua', 'utf8');
      const checks = lua.slice(
        lua.indexOf('local function productBlockers'),
        lua.indexOf('local function drawableFor'),
      );
      const code = checks.replace(/--.*$/gm, '');
      const inOrder = [...code.matchAll(/'([A-Z][A-Z_]+[A-Z])'/g)].map((m) => m[1]);
      expect(inOrder.length).toBe(9);
      expect(inOrder).toEqual(BLOCKER_CODES);
    },
  );

  it('numbers the blockers 1..n without gaps', () => {
    expect(BLOCKER_CODES.map((c) => (CATALOGUE[c] as CodeEntry).blocker)).toEqual(BLOCKER_CODES.map((_, i) => i + 1));
  });
});

/** The README's errors table, as the catalogue makes it. */
function errorsTable(): string {
  const answeredBy = (e: CodeEntry) =>
    e.operations === 'every'
      ? 'every authenticated operation'
      : e.operations === 'admin'
        ? 'every admin operation'
        : e.operations.length === 0
          ? 'any path under `/v1`'
          : e.operations.map((o) => `\`${o}\``).join(', ');
  const rows = [...entries]
    .sort(([, a], [, b]) => a.status - b.status)
    .map(
      ([c, e]) => `| ${e.status} | \`${c}\` | ${e.en.title} | ${e.zh.title} | ${answeredBy(e)} | ${e.blocker ?? ''} |`,
    );
  return [
    '| status | code | title | 中文标题 | answered by (operationId) | blocker order |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

describe('the README', () => {
  it('errors table is the catalogue', () => {
    const readme = readFileSync('README.md', 'utf8');
    const start = readme.indexOf('| status | code | title | 中文标题 |');
    expect(start, 'README has the errors table').toBeGreaterThan(0);
    const table = readme.slice(start, readme.indexOf('\n\n', start));
    expect(table, `expected:\n${errorsTable()}`).toBe(errorsTable());
  });
});

describe('the metric labels', () => {
  it("quota_decisions_total starts with OK and every code each operation's script can answer", async () => {
    const metrics = createMetrics();
    const decisions = (await metrics.registry.getSingleMetric('quota_decisions_total')!.get()).values;
    for (const op of DECISION_OPERATIONS) {
      const labels = decisions.filter((v) => v.labels.operation === op).map((v) => String(v.labels.result));
      const expected = entries
        .filter(([, e]) => e.source === 'script' && Array.isArray(e.operations) && e.operations.includes(op))
        .map(([c]) => c);
      expect(labels.sort(), op).toEqual(['OK', ...expected].sort());
    }
    expect(decisions.filter((v) => v.labels.operation === 'reserve').length).toBe(13);
  });
});

describe('the texts', () => {
  const rich = {
    drawable: 1234,
    retryAt: Date.UTC(2031, 0, 2, 3, 4),
    statusReason: 'reason-x',
    pauseReason: 'pause-y',
    minAmount: 100,
    maxAmount: 5000,
    repayable: 700,
    message: 'english message',
    fields: ['body.amount'],
    method: 'DELETE',
    path: '/v1/x',
    allow: ['GET', 'PUT'],
    limitBytes: 16384,
    timeoutMs: 10_000,
    requestId: 'req-1',
  };

  for (const code of ERROR_CODES) {
    it(`${code}: a title and a detail in both languages, with and without context`, () => {
      for (const params of [{}, rich]) {
        const en = textsOf(code, params, 'en');
        const zh = textsOf(code, params, 'zh');
        for (const t of [en.title, en.detail, zh.title, zh.detail]) {
          expect(t.length).toBeGreaterThan(0);
          expect(t).not.toMatch(/undefined|NaN|\[object/);
        }
        expect(zh.title).toMatch(/[\u4e00-\u9fff]/);
        expect(zh.detail).toMatch(/[\u4e00-\u9fff]/);
        expect(en.title).not.toMatch(/[\u4e00-\u9fff]/);
      }
    });
  }

  it('names only known operations', () => {
    for (const [c, e] of entries)
      if (Array.isArray(e.operations)) for (const o of e.operations) expect(OPERATION_IDS, c).toContain(o);
  });
});
