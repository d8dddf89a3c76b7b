/**
 * "Why can't this customer draw?": one explanation per blocker code. The
 * service's own `blockerDetails` (contract: "Languages"), asked for in the
 * chosen language, win when the line has them; otherwise the console's short
 * texts below, in the same language, made from the line and pool snapshots.
 */
import type { Line, Pool } from '@quota-allocator/client';
import { amount, time } from './format.js';
import type { Language } from './language.js';

export interface Explanation {
  code: string;
  title: string;
  detail: string;
  /** The service's text (in the language asked for) or the console's own. */
  source: 'service' | 'console';
}

export function explainBlockers(line: Line, pool: Pool | undefined, language: Language): Explanation[] {
  return line.blockers.map((code) => {
    const fromService = line.blockerDetails?.find((d) => d.code === code);
    if (fromService) {
      const until = fromService.retryAt ? ` (${time(fromService.retryAt)})` : '';
      return { code, title: fromService.title, detail: fromService.detail + until, source: 'service' };
    }
    const text = (language === 'zh-CN' ? chinese : english)(code, line, pool);
    return { code, ...text, source: 'console' };
  });
}

type Text = { title: string; detail: string };

function english(code: string, line: Line, pool: Pool | undefined): Text {
  const reason = line.statusReason ? ` Reason: ${line.statusReason}.` : '';
  switch (code) {
    case 'PRODUCT_CLOSED':
      return {
        title: 'Product closed',
        detail: `The product takes no new draws${pool?.closesAt ? ` (its window ended ${time(pool.closesAt)})` : ''}.`,
      };
    case 'PRODUCT_PAUSED': {
      const why = pool?.pauseReason ? ` (${pool.pauseReason})` : '';
      const reopens = pool?.resumeAt ? `; they reopen at ${time(pool.resumeAt)}` : '; no reopening time is set';
      return { title: 'Product paused', detail: `Draws are paused${why}${reopens}.` };
    }
    case 'PRODUCT_NOT_OPEN':
      return {
        title: 'Product not open yet',
        detail: `Draws start${pool?.opensAt ? ` at ${time(pool.opensAt)}` : ' later'}.`,
      };
    case 'ACCOUNT_PENDING_ACTIVATION':
      return { title: 'Account pending activation', detail: `The account is not activated yet.${reason}` };
    case 'ACCOUNT_FROZEN':
      return {
        title: 'Account frozen',
        detail: `The account is frozen and cannot draw until it is unfrozen.${reason}`,
      };
    case 'ACCOUNT_CLOSED':
      return { title: 'Account closed', detail: `The account is closed and cannot draw in this product.${reason}` };
    case 'AMOUNT_OUT_OF_RANGE':
      return {
        title: 'No amount in range',
        detail: `No amount the customer could draw is within the product's range (minimum ${amount(pool?.minAmount)}).`,
      };
    case 'CUSTOMER_LIMIT_EXCEEDED':
      return {
        title: 'Credit line used up',
        detail:
          `Limit ${amount(line.limit)}, held ${amount(line.held)}, drawn ${amount(line.drawn)}: ` +
          `${amount(line.available)} left. Repaying or releasing holds frees it.`,
      };
    case 'POOL_EXHAUSTED':
      return {
        title: 'Campaign budget used up',
        detail: `${amount(pool?.available)} left in the pool. Quota comes back when holds are released or expire.`,
      };
    default:
      return { title: code, detail: 'A reserve would be refused with this code.' };
  }
}

function chinese(code: string, line: Line, pool: Pool | undefined): Text {
  const reason = line.statusReason ? `原因：${line.statusReason}。` : '';
  switch (code) {
    case 'PRODUCT_CLOSED':
      return {
        title: '产品已关闭',
        detail: `该产品不再接受新的支用${pool?.closesAt ? `（已于 ${time(pool.closesAt)} 结束）` : ''}。`,
      };
    case 'PRODUCT_PAUSED': {
      const why = pool?.pauseReason ? `（${pool.pauseReason}）` : '';
      const reopens = pool?.resumeAt ? `，将于 ${time(pool.resumeAt)} 恢复` : '，暂未设定恢复时间';
      return { title: '产品已暂停', detail: `支用已暂停${why}${reopens}。` };
    }
    case 'PRODUCT_NOT_OPEN':
      return {
        title: '产品尚未开放',
        detail: `支用${pool?.opensAt ? `将于 ${time(pool.opensAt)} 开始` : '稍后开始'}。`,
      };
    case 'ACCOUNT_PENDING_ACTIVATION':
      return { title: '账户待激活', detail: `账户尚未激活。${reason}` };
    case 'ACCOUNT_FROZEN':
      return { title: '账户已冻结', detail: `账户已被冻结，解冻前无法支用。${reason}` };
    case 'ACCOUNT_CLOSED':
      return { title: '账户已关闭', detail: `账户已关闭，无法在该产品中支用。${reason}` };
    case 'AMOUNT_OUT_OF_RANGE':
      return {
        title: '没有可支用的金额',
        detail: `客户可支用的金额不在产品允许的范围内（最低 ${amount(pool?.minAmount)}）。`,
      };
    case 'CUSTOMER_LIMIT_EXCEEDED':
      return {
        title: '额度已用完',
        detail:
          `额度 ${amount(line.limit)}，占用中 ${amount(line.held)}，已支用 ` +
          `${amount(line.drawn)}，剩余 ${amount(line.available)}。还款或释放占用后可恢复。`,
      };
    case 'POOL_EXHAUSTED':
      return {
        title: '活动额度已用完',
        detail: `额度池剩余 ${amount(pool?.available)}。占用释放或过期后额度会回到池中。`,
      };
    default:
      return { title: code, detail: '按当前状态，支用会以此代码被拒绝。' };
  }
}
