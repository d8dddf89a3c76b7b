/**
 * The one catalogue of error codes. Each code is listed once, with its HTTP
 * status, where it is decided (a Lua script or the HTTP layer), the
 * operations (OpenAPI operationIds) that can answer it, its place in the
 * contract's blocker order, whether it carries Retry-After, and its title
 * and detail template in English and Simplified Chinese.
 *
 * Derived from it: the engine's refusal codes (src/engine/types.ts), the
 * problem table (src/http/problems.ts), the metric label lists
 * (src/metrics.ts), the per-route code lists of the OpenAPI document
 * (src/http/openapi.ts) and the README's errors table (checked by
 * test/unit/error-catalogue.test.ts, which also checks the blocker order against
 * lua/includes/views.lua).
 *
 * The Chinese texts are for the borrower reading them in a loan app: what
 * happened and what they can do. The English details are the service's
 * diagnostic texts, as before.
 */
import type { RefusalContext } from '../engine/types.js';
import { FORMATS, type Formats } from './format.js';
import type { Language } from './language.js';

/** Every operation of the API that can answer a problem (its OpenAPI operationId). */
export const OPERATION_IDS = [
  'putProduct',
  'patchProduct',
  'getProduct',
  'listProducts',
  'bulkImportLines',
  'putLine',
  'getLine',
  'repay',
  'reserve',
  'listReservations',
  'listCustomerReservations',
  'getReservation',
  'commit',
  'release',
  'resolveSettlement',
  'redriveSettlement',
  'reservationEvents',
  'internalLedger',
  'queueDashboard',
] as const;
export type OperationId = (typeof OPERATION_IDS)[number];

/** Operations that read a request body (413, 408 apply to them). */
const WITH_BODY: OperationId[] = [
  'putProduct',
  'patchProduct',
  'bulkImportLines',
  'putLine',
  'repay',
  'reserve',
  'commit',
  'release',
  'resolveSettlement',
];
/** Operations whose path names a product that must exist. */
const ON_A_PRODUCT: OperationId[] = [
  'patchProduct',
  'getProduct',
  'bulkImportLines',
  'putLine',
  'getLine',
  'repay',
  'reserve',
  'listReservations',
  'listCustomerReservations',
  'getReservation',
  'commit',
  'release',
  'resolveSettlement',
  'redriveSettlement',
  'reservationEvents',
  'internalLedger',
];
const ON_A_RESERVATION: OperationId[] = [
  'getReservation',
  'commit',
  'release',
  'resolveSettlement',
  'redriveSettlement',
  'reservationEvents',
];

/** What a detail template may use: the refusal's context, or what the HTTP layer knew. */
export interface DetailParams extends RefusalContext {
  /** The English diagnostic text of an HTTP-layer answer (validation messages, limits). */
  message?: string;
  /** 400: the fields that failed validation (`body.amount`). */
  fields?: string[];
  method?: string;
  path?: string;
  allow?: string[];
  limitBytes?: number;
  timeoutMs?: number;
  requestId?: string;
}

export interface Texts {
  title: string;
  detail: (p: DetailParams, f: Formats) => string;
}

export interface CodeEntry {
  status: number;
  /** `script`: a Lua script answers it (an engine refusal); `http`: the HTTP layer does. */
  source: 'script' | 'http';
  /** The operations that can answer it; `every`: every authenticated one; `admin`: every admin one. */
  operations: readonly OperationId[] | 'every' | 'admin';
  /** Its place (from 1) in the contract's order of reserve checks, for codes a line's `blockers` can hold. */
  blocker?: number;
  /** `always`: every answer with this code has Retry-After; `sometimes`: when the time is known. */
  retryAfter?: 'always' | 'sometimes';
  en: Texts;
  zh: Texts;
}

const reasonOf = (p: DetailParams) => p.statusReason ?? p.line?.statusReason ?? null;
const en = (title: string, detail?: Texts['detail']): Texts => ({
  title,
  detail: detail ?? ((p) => p.message ?? title),
});
const zh = (title: string, detail: Texts['detail']): Texts => ({ title, detail });

export const CATALOGUE = {
  INVALID_REQUEST: {
    status: 400,
    source: 'http',
    operations: 'every',
    en: en('The request is not valid'),
    zh: zh('请求内容有误', (p) =>
      p.fields && p.fields.length > 0
        ? `请求中有内容不符合要求（${p.fields.join('、')}），请检查后重试。`
        : '请求中有内容不符合要求，请检查后重试。',
    ),
  },
  UNAUTHENTICATED: {
    status: 401,
    source: 'http',
    operations: 'every',
    en: en('Missing or unknown API key'),
    zh: zh('身份验证失败', () => '缺少访问密钥或密钥无法识别，请联系服务提供方。'),
  },
  FORBIDDEN: {
    status: 403,
    source: 'http',
    operations: 'admin',
    en: en('This key may not do that'),
    zh: zh('无权进行此操作', () => '当前使用的密钥没有执行此操作的权限。'),
  },
  PRODUCT_NOT_FOUND: {
    status: 404,
    source: 'script',
    operations: ON_A_PRODUCT,
    en: en('No such product', () => 'no product with this id'),
    zh: zh('找不到该产品', () => '没有找到这款贷款产品，请确认产品是否正确。'),
  },
  NO_CREDIT_LINE: {
    status: 404,
    source: 'script',
    operations: ['getLine', 'repay', 'reserve'],
    en: en('The customer has no credit line in this product', () => 'this customer has no credit line in this product'),
    zh: zh('尚未开通额度', () => '您在这款产品下还没有借款额度，暂时无法借款。如需开通，请联系客服。'),
  },
  RESERVATION_NOT_FOUND: {
    status: 404,
    source: 'script',
    operations: ON_A_RESERVATION,
    en: en('No such reservation', () => 'no reservation with this id in this product'),
    zh: zh('找不到这笔借款申请', () => '没有找到这笔借款申请的额度记录，请确认后再试。'),
  },
  ROUTE_NOT_FOUND: {
    status: 404,
    source: 'http',
    operations: [],
    en: en('No such route'),
    zh: zh('请求的地址不存在', (p) =>
      p.method && p.path ? `没有这个接口：${p.method} ${p.path}。` : '没有这个接口。',
    ),
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    source: 'http',
    operations: [],
    en: en('This path does not take this method'),
    zh: zh(
      '不支持该请求方式',
      (p) => `${p.path ?? '该地址'} 不支持 ${p.method ?? '这种请求方式'}，可用的方式：${(p.allow ?? []).join('、')}。`,
    ),
  },
  REQUEST_TIMEOUT: {
    status: 408,
    source: 'http',
    operations: WITH_BODY,
    en: en('The request body did not arrive in time'),
    zh: zh(
      '请求超时',
      (p) =>
        `请求内容没有在 ${Math.ceil((p.timeoutMs ?? 10_000) / 1000)} 秒内送达，本次请求没有做任何处理，可以立即重试。`,
    ),
  },
  POOL_EXHAUSTED: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 9,
    en: en(
      'The pool cannot cover this amount',
      (p, f) => `the pool can cover at most ${f.money(p.drawable)} for this customer now`,
    ),
    zh: zh('本期活动额度不足', (p, f) =>
      p.drawable
        ? `本期活动的额度快用完了，目前您最多还能借 ${f.money(p.drawable)}。可以减少借款金额，或稍后再试：其他人释放的额度会重新开放。`
        : '本期活动的额度暂时用完了。其他人释放的额度会重新开放，请稍后再试。',
    ),
  },
  CUSTOMER_LIMIT_EXCEEDED: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 8,
    en: en(
      "The customer's credit line cannot cover this amount",
      (p, f) => `the credit line has ${f.money(p.line?.available)} available`,
    ),
    zh: zh('超出您的可用额度', (p, f) =>
      p.line
        ? `您目前的可用额度为 ${f.money(p.line.available)}，不足以借这笔金额。按时还款后额度会恢复。`
        : '您目前的可用额度不足以借这笔金额。按时还款后额度会恢复。',
    ),
  },
  ACCOUNT_PENDING_ACTIVATION: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 4,
    en: en('The account is pending activation', (p) => withReason('the account is pending activation', reasonOf(p))),
    zh: zh(
      '账户待激活',
      (p) => `您的账户正在等待激活，暂时无法借款${zhReason(reasonOf(p))}。激活完成后即可借款，如有疑问请联系客服。`,
    ),
  },
  ACCOUNT_FROZEN: {
    status: 409,
    source: 'script',
    operations: ['reserve', 'commit'],
    blocker: 5,
    en: en('The account is frozen', (p) => withReason('the account is frozen', reasonOf(p))),
    zh: zh('账户已冻结', (p) => `您的账户已被冻结，暂时无法借款${zhReason(reasonOf(p))}。如需解冻，请联系客服。`),
  },
  ACCOUNT_CLOSED: {
    status: 409,
    source: 'script',
    operations: ['reserve', 'commit'],
    blocker: 6,
    en: en('The account is closed', (p) => withReason('the account is closed', reasonOf(p))),
    zh: zh('账户已关闭', (p) => `您的账户已关闭，无法在这款产品下借款${zhReason(reasonOf(p))}。如有疑问，请联系客服。`),
  },
  PRODUCT_NOT_OPEN: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 3,
    retryAfter: 'always',
    en: en(
      'The product is not open yet',
      (p, f) => `the product opens at ${p.retryAt === undefined ? 'a later time' : f.time(p.retryAt)}`,
    ),
    zh: zh('产品尚未开放', (p, f) =>
      p.retryAt === undefined
        ? '这款产品还没有开放借款，请稍后再来。'
        : `这款产品将于${f.time(p.retryAt)}开放借款，请届时再来。`,
    ),
  },
  PRODUCT_CLOSED: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 1,
    en: en('The product is closed', () => 'the product is closed for new draws'),
    zh: zh('产品已停止借款', () => '这款产品已停止受理新的借款，已借的款项不受影响。您可以选择其他产品。'),
  },
  PRODUCT_PAUSED: {
    status: 409,
    source: 'script',
    operations: ['reserve'],
    blocker: 2,
    retryAfter: 'sometimes',
    en: en('The product is paused', (p, f) => {
      const until = p.retryAt === undefined ? '' : ` until ${f.time(p.retryAt)}`;
      return `the product is paused${until}${p.pauseReason ? `: ${p.pauseReason}` : ''}`;
    }),
    zh: zh(
      '产品暂停借款',
      (p, f) =>
        `这款产品暂停借款${zhReason(p.pauseReason ?? null)}，` +
        (p.retryAt === undefined
          ? '恢复时间另行通知，请留意消息后再试。'
          : `预计于${f.time(p.retryAt)}恢复，请届时再试。`),
    ),
  },
  RESERVATION_EXPIRED: {
    status: 409,
    source: 'script',
    operations: ['commit'],
    en: en(
      'The hold has expired',
      (p, f) => `the hold expired at ${p.reservation ? f.time(p.reservation.expiresAt) : 'an earlier time'}`,
    ),
    zh: zh('额度保留已过期', (p, f) =>
      p.reservation
        ? `为您保留的额度已于${f.time(p.reservation.expiresAt)}过期，如仍需借款请重新申请。`
        : '为您保留的额度已过期，如仍需借款请重新申请。',
    ),
  },
  RESERVATION_RELEASED: {
    status: 409,
    source: 'script',
    operations: ['commit'],
    en: en('The hold was released', () => 'the hold was released'),
    zh: zh('额度保留已取消', () => '为您保留的这笔额度已经释放，如仍需借款请重新申请。'),
  },
  RESERVATION_ALREADY_COMMITTED: {
    status: 409,
    source: 'script',
    operations: ['commit', 'release'],
    en: en(
      'The reservation is already committed',
      (p, f) =>
        `the reservation is ${p.reservation?.status ?? 'committed'} with ` +
        `${f.money(p.reservation?.committedAmount)} committed`,
    ),
    zh: zh('这笔借款已确认', (p, f) =>
      p.reservation
        ? `这笔借款已确认，金额 ${f.money(p.reservation.committedAmount)}（${f.reservationStatus(p.reservation.status)}），不能再更改或取消。`
        : '这笔借款已确认，不能再更改或取消。',
    ),
  },
  RESERVATION_STATE_CONFLICT: {
    status: 409,
    source: 'script',
    operations: ['resolveSettlement', 'redriveSettlement'],
    en: en(
      'The reservation is not in a state that allows this',
      (p, f) => p.message ?? `the reservation is ${f.reservationStatus(p.reservation?.status)}`,
    ),
    zh: zh(
      '当前状态下无法进行此操作',
      (p, f) => `这笔借款目前的状态是“${f.reservationStatus(p.reservation?.status)}”，无法进行此操作。`,
    ),
  },
  AMOUNT_OUT_OF_RANGE: {
    status: 422,
    source: 'script',
    operations: ['reserve'],
    blocker: 7,
    en: en("The amount is outside the product's range", (p, f) =>
      p.maxAmount === null || p.maxAmount === undefined
        ? `the amount must be at least ${f.money(p.minAmount)}`
        : `the amount must be between ${f.money(p.minAmount)} and ${f.money(p.maxAmount)}`,
    ),
    zh: zh('借款金额不在允许范围内', (p, f) =>
      p.maxAmount === null || p.maxAmount === undefined
        ? `单笔借款金额不能低于 ${f.money(p.minAmount)}，请调整金额后重试。`
        : `单笔借款金额需在 ${f.money(p.minAmount)} 至 ${f.money(p.maxAmount)} 之间，请调整金额后重试。`,
    ),
  },
  COMMIT_EXCEEDS_HOLD: {
    status: 422,
    source: 'script',
    operations: ['commit'],
    en: en('The commit is larger than the hold', (p, f) => `the hold is ${f.money(p.reservation?.amount)}`),
    zh: zh('确认金额超过保留额度', (p, f) => `确认的借款金额不能超过为您保留的 ${f.money(p.reservation?.amount)}。`),
  },
  REPAYMENT_EXCEEDS_DRAWN: {
    status: 422,
    source: 'script',
    operations: ['repay'],
    en: en(
      'The repayment is larger than the settled drawn amount',
      (p, f) => `at most ${f.money(p.repayable)} of settled money can be repaid now`,
    ),
    zh: zh(
      '还款金额超过待还金额',
      (p, f) => `目前最多可以还 ${f.money(p.repayable)}（已放款的部分），请调整还款金额。`,
    ),
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    source: 'script',
    operations: ['reserve', 'repay'],
    en: en(
      'The idempotency key was used with another request',
      () => 'this Idempotency-Key was first used with a different request body',
    ),
    zh: zh(
      '请求编号重复',
      () => '这个请求编号（Idempotency-Key）已经用于另一笔内容不同的请求，请换一个新的编号再提交。',
    ),
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    source: 'http',
    operations: WITH_BODY,
    en: en('The body is too large'),
    zh: zh('请求内容过大', (p) =>
      p.limitBytes ? `请求内容不能超过 ${p.limitBytes} 字节。` : '请求内容超过了允许的大小。',
    ),
  },
  RATE_LIMITED: {
    status: 429,
    source: 'http',
    operations: 'every',
    retryAfter: 'always',
    en: en('Too many requests'),
    zh: zh('操作太频繁', () => '操作太频繁了，请稍等片刻再试。'),
  },
  INTERNAL: {
    status: 500,
    source: 'http',
    operations: 'every',
    en: en('Internal error'),
    zh: zh(
      '系统内部错误',
      (p) => `系统出现了内部错误，请稍后再试。如果问题一直存在，请提供请求编号 ${p.requestId ?? ''} 联系客服。`,
    ),
  },
  UNAVAILABLE: {
    status: 503,
    source: 'http',
    operations: 'every',
    retryAfter: 'always',
    en: en('The service cannot answer right now'),
    zh: zh('服务暂时不可用', () => '系统繁忙，暂时无法处理，请稍后重试。用同一个请求编号重试不会重复借款。'),
  },
} as const satisfies Record<string, CodeEntry>;

function withReason(text: string, reason: string | null): string {
  return reason ? `${text}: ${reason}` : text;
}
function zhReason(reason: string | null): string {
  return reason ? `（原因：${reason}）` : '';
}

export type ErrorCode = keyof typeof CATALOGUE;
export const ERROR_CODES = Object.keys(CATALOGUE) as [ErrorCode, ...ErrorCode[]];
const entries = Object.entries(CATALOGUE) as [ErrorCode, CodeEntry][];

type ScriptErrorCode = { [C in ErrorCode]: (typeof CATALOGUE)[C]['source'] extends 'script' ? C : never }[ErrorCode];

/**
 * Refusals a script may answer that are not HTTP codes of their own: each
 * is answered as `400 INVALID_REQUEST` naming the field (src/http/respond.ts).
 */
export const SCRIPT_VALIDATION_CODES = ['TTL_OUT_OF_RANGE', 'INVALID_CONFIG'] as const;

/** Every code a script may answer instead of OK (test/unit/script-catalogue.test.ts checks the Lua against it). */
export const SCRIPT_REFUSAL_CODES = [
  ...entries.filter(([, e]) => e.source === 'script').map(([c]) => c as ScriptErrorCode),
  ...SCRIPT_VALIDATION_CODES,
] as const;

type BlockerCode = { [C in ErrorCode]: (typeof CATALOGUE)[C] extends { blocker: number } ? C : never }[ErrorCode];

/** The codes a line's `blockers` can hold, in the contract's order (lua/includes/views.lua decides them in it). */
export const BLOCKER_CODES = entries
  .filter(([, e]) => e.blocker !== undefined)
  .sort(([, a], [, b]) => a.blocker! - b.blocker!)
  .map(([c]) => c as BlockerCode) as [BlockerCode, ...BlockerCode[]];

/** The codes an operation can answer (role-wide ones included), in catalogue order. */
export function codesOf(operation: OperationId, role: 'admin' | 'client'): ErrorCode[] {
  return entries
    .filter(
      ([, e]) =>
        e.operations === 'every' || (e.operations === 'admin' ? role === 'admin' : e.operations.includes(operation)),
    )
    .map(([c]) => c);
}

/** The codes of an operation that a script decides (its metric labels). */
export function scriptCodesOf(operation: OperationId): ErrorCode[] {
  return entries
    .filter(([, e]) => e.source === 'script' && Array.isArray(e.operations) && e.operations.includes(operation))
    .map(([c]) => c);
}

/** The title and detail of a code in a language. */
export function textsOf(code: ErrorCode, params: DetailParams, language: Language): { title: string; detail: string } {
  const texts: Texts = CATALOGUE[code][language];
  return { title: texts.title, detail: texts.detail(params, FORMATS[language]) };
}
