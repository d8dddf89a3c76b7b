/**
 * "Why can't this customer draw?" in plain words. In another language than
 * English (--lang zh) the service's own texts are used: its `blockerDetails`
 * (contract: "Languages") explain each blocker in that language. In English
 * the texts below win: made from the line and pool snapshots, they show the
 * operator the numbers behind each blocker, which the customer-facing texts
 * leave out.
 */
import type { Line, Pool } from '@quota-allocator/client';
import { money } from './io.js';

export interface Explanation {
  code: string;
  text: string;
  /** Where the text came from: the service (in the chosen language) or this CLI (English). */
  source: 'service' | 'cli';
}

export function explainBlockers(line: Line, pool: Pool | undefined, language = 'en'): Explanation[] {
  return line.blockers.map((code) => {
    const fromService = language === 'en' ? undefined : line.blockerDetails?.find((d) => d.code === code);
    if (fromService) {
      const text =
        `${fromService.title}: ` + `${fromService.detail}${fromService.retryAt ? ` (${fromService.retryAt})` : ''}`;
      return { code, text, source: 'service' };
    }
    return { code, text: explainInEnglish(code, line, pool), source: 'cli' };
  });
}

function explainInEnglish(code: string, line: Line, pool: Pool | undefined): string {
  const reason = line.statusReason ? ` Reason: ${line.statusReason}.` : '';
  const min = pool ? money(pool.minAmount) : 'the minimum draw';
  switch (code) {
    case 'PRODUCT_CLOSED':
      return (
        `The product is closed for new ` +
        `draws${pool?.closesAt ? ` (its window ended ${pool.closesAt})` : ''}. ` +
        `Nobody can draw from it any more.`
      );
    case 'PRODUCT_PAUSED': {
      const why = pool?.pauseReason ? ` (${pool.pauseReason})` : '';
      const reopens = pool?.resumeAt ? `; draws open again at ${pool.resumeAt}` : '; no reopening time is set';
      return `The product is paused${why}${reopens}.`;
    }
    case 'PRODUCT_NOT_OPEN':
      return `The product is not open yet${pool?.opensAt ? `: draws start at ${pool.opensAt}` : ''}.`;
    case 'ACCOUNT_PENDING_ACTIVATION':
      return `The customer's account is still pending activation.${reason} Draws are possible once it is activated.`;
    case 'ACCOUNT_FROZEN':
      return `The customer's account is frozen (e.g. by risk control).${reason} It must be unfrozen before any draw.`;
    case 'ACCOUNT_CLOSED':
      return `The customer's account is closed.${reason} It cannot draw in this product.`;
    case 'CUSTOMER_LIMIT_EXCEEDED':
      return (
        `The credit line is used up: limit ${money(line.limit)}, held ` +
        `${money(line.held)}, drawn ${money(line.drawn)}, so ${money(line.available)} ` +
        `left, less than ${min}. Repaying settled money or releasing holds frees it.`
      );
    case 'POOL_EXHAUSTED': {
      const outsideTiers =
        pool && line.tier === null ? ` (${money(pool.availableToAllTiers)} outside the priority tiers)` : '';
      return (
        `The campaign's pool is used up: ${money(pool?.available)} left${outsideTiers}, ` +
        `less than ${min}. Quota comes back when holds are released or expire.`
      );
    }
    case 'AMOUNT_OUT_OF_RANGE':
      return (
        `No amount the customer could draw is within the product's range (${min} to ` +
        `${pool?.maxAmount === null || pool === undefined ? 'no cap' : money(pool.maxAmount)}).`
      );
    default:
      return `Refused with ${code}.`;
  }
}
