/**
 * Every body, path parameter and header the API takes, defined once (so the
 * OpenAPI document can be generated from the same schemas).
 */
import { z } from 'zod';
import { LINE_STATUSES, PRODUCT_STATUSES, type ReservationStatus } from '../engine/types.js';

export const MAX_METADATA_BYTES = 1024;
export const MAX_HOLD_TTL_SECONDS = 86_400;

/** Ids end up inside Redis key names: `{`, `}` and `:` would break the layout. */
export const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const id = z
  .string()
  .regex(ID_PATTERN, 'must be 1 to 64 characters of [A-Za-z0-9._-]')
  .describe('1 to 64 characters of [A-Za-z0-9._-]');
/** Positive amounts in minor units: safe integers only (no strings, fractions, exponents beyond 2^53-1). */
export const amount = z.int().min(1).describe('minor currency units (fen, cents)');
export const limitAmount = z.int().min(0).describe('minor currency units (fen, cents)');
const reasonText = z.string().max(256);
/** ISO 8601 with a zone; kept as epoch ms. */
const isoTime = z.iso.datetime({ offset: true }).transform((s) => Date.parse(s));

const poolFields = {
  capacity: limitAmount,
  minAmount: amount.optional(),
  maxAmount: amount.nullable().optional(),
  holdTtlSeconds: z.int().min(1).max(MAX_HOLD_TTL_SECONDS).optional(),
  opensAt: isoTime.nullable().optional(),
  closesAt: isoTime.nullable().optional(),
  status: z.enum(PRODUCT_STATUSES).optional(),
  pauseReason: reasonText.nullable().optional(),
  resumeAt: isoTime.nullable().optional(),
  priorityReserve: z
    .strictObject({ tiers: z.array(id).min(1).max(32), amount: limitAmount })
    .nullable()
    .optional(),
  /** Sharded products: sub-pools, fixed at creation (src/engine/shards.ts). */
  shards: z.int().min(1).max(64).optional(),
};

export const productPutBody = z.strictObject({ productId: id.optional(), ...poolFields });
export const productPatchBody = z
  .strictObject({ ...poolFields, capacity: limitAmount.optional() })
  .refine((b) => Object.keys(b).length > 0, 'at least one field to change');

const lineFields = {
  limit: limitAmount,
  status: z.enum(LINE_STATUSES).default('active'),
  statusReason: reasonText.nullable().default(null),
  tier: id.nullable().default(null),
};
export const linePutBody = z.strictObject({ customerId: id.optional(), ...lineFields });
export const bulkLineRow = z.strictObject({ customerId: id, ...lineFields });

const metadata = z
  .record(z.string(), z.unknown())
  .refine(
    (m) => Buffer.byteLength(JSON.stringify(m), 'utf8') <= MAX_METADATA_BYTES,
    `at most ${MAX_METADATA_BYTES} bytes as UTF-8 JSON`,
  )
  .describe(`a JSON object of at most ${MAX_METADATA_BYTES} bytes as UTF-8 JSON, passed to settlement`);

export const reserveBody = z.strictObject({
  customerId: id,
  amount,
  ttlSeconds: z
    .int()
    .min(1)
    .max(MAX_HOLD_TTL_SECONDS)
    .optional()
    .describe("from 1 to the product's holdTtlSeconds, its default"),
  metadata: metadata.optional(),
});
export const commitBody = z.strictObject({ amount: amount.optional() });
/** A release takes no fields (built once: `pick` on every request cost a schema per release). */
export const emptyBody = commitBody.pick({});
export const repayBody = z.strictObject({ amount });

export const productParams = z.object({ productId: id });
export const lineParams = z.object({ productId: id, customerId: id });
export const reservationParams = z.object({ productId: id, reservationId: id });
export const idempotencyKeyHeader = z
  .string({ error: (issue) => (issue.input === undefined ? 'required' : 'must be a string') })
  .regex(ID_PATTERN, 'must be 1 to 64 characters of [A-Za-z0-9._-]');

export const RESERVATION_STATUSES = [
  'held',
  'committed',
  'released',
  'expired',
  'settled',
  'reversed',
  'settlement_unknown',
] as const satisfies readonly ReservationStatus[];

// Operator routes (src/http/routes/admin.ts).
export const resolveBody = z.strictObject({
  outcome: z.enum(['settled', 'reversed']),
  reason: z.string().max(256).optional(),
});
/** An opaque page cursor: the `nextCursor` of the previous page. */
export const pageCursor = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,400}$/, 'must be the nextCursor of the previous page')
  .describe('the `nextCursor` of the previous page');
export const pageLimit = z.coerce.number().int().min(1).max(500).default(100).describe('items per page, 1 to 500');
/** `cursor` / `limit` paging (GET /v1/products, a customer's reservations). */
export const pageQuery = z.object({ cursor: pageCursor.optional(), limit: pageLimit });
export const reservationListQuery = z.object({
  status: z.enum(RESERVATION_STATUSES),
  cursor: pageCursor.optional(),
  limit: pageLimit,
});
export const ledgerQuery = z.object({
  // Redis scan cursors are unsigned 64-bit: a larger one is a bad request, not a Redis error.
  cursor: z
    .string()
    .regex(/^\d{1,20}$/, 'must be a cursor from an earlier page')
    // zod runs refinements after a failed regex too: only digits reach BigInt.
    .refine(
      (c) => !/^\d{1,20}$/.test(c) || BigInt(c) <= 0xffff_ffff_ffff_ffffn,
      'must be a cursor from an earlier page',
    )
    .default('0'),
  count: z.coerce.number().int().min(1).max(1000).default(100),
});
