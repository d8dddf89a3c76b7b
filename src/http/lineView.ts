/**
 * The line as GET of a line answers it: the snapshot plus `blockerDetails`,
 * each blocker explained in the request's language (contract: Languages).
 * The texts are the error catalogue's, fed with what the blocker is about:
 * the line's statusReason, the pool's pause reason, and when it lifts.
 */
import { textsOf, type DetailParams } from '../errors/catalogue.js';
import type { Language } from '../errors/language.js';
import type { LineSnapshot, PoolSnapshot, RefusalCode } from '../engine/types.js';
import { isoTime, lineJson, type LineJson } from '../wireFormat.js';

export interface BlockerDetail {
  code: RefusalCode;
  title: string;
  detail: string;
  /** When this blocker lifts, if known (ISO 8601). */
  retryAt?: string;
}

export interface LineView extends LineJson {
  blockerDetails: BlockerDetail[];
}

/** When a blocker lifts, if known: a pause at its resumeAt, a product not yet open at its opensAt. */
function liftsAt(code: RefusalCode, pool: PoolSnapshot): number | undefined {
  if (code === 'PRODUCT_PAUSED') return pool.resumeAt ?? undefined;
  if (code === 'PRODUCT_NOT_OPEN') return pool.opensAt ?? undefined;
  return undefined;
}

export function lineView(line: LineSnapshot, pool: PoolSnapshot, language: Language): LineView {
  const blockerDetails = line.blockers.map((code) => {
    const retryAt = liftsAt(code, pool);
    const params: DetailParams = {
      line,
      statusReason: line.statusReason,
      pauseReason: pool.pauseReason,
      minAmount: pool.minAmount,
      maxAmount: pool.maxAmount,
      drawable: line.drawable,
      ...(retryAt === undefined ? {} : { retryAt }),
    };
    const { title, detail } = textsOf(
      code as Exclude<RefusalCode, 'TTL_OUT_OF_RANGE' | 'INVALID_CONFIG'>,
      params,
      language,
    );
    return { code, title, detail, ...(retryAt === undefined ? {} : { retryAt: isoTime(retryAt) }) };
  });
  return { ...lineJson(line), blockerDetails };
}
