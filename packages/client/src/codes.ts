/**
 * Which error codes each operation can answer as a problem value, keyed by
 * the OpenAPI operationId of its route: a caller that switches on
 * `problem.code` gets only the codes that route can really send, and a typo
 * or a code of another route is a compile error.
 *
 * Written out here, since the client may not depend on the service's code;
 * test/unit/client/codes.test.ts checks each list against the per-status
 * codes the service's OpenAPI document declares for that route, so the two
 * cannot drift apart.
 */

/**
 * Answered for a path or method the deployment does not serve (a base URL
 * with a wrong path, an older version): not a route's own codes, so the
 * OpenAPI document lists them for no route, but any call can get them.
 */
export const ANY_PATH_CODES = ['ROUTE_NOT_FOUND', 'METHOD_NOT_ALLOWED'] as const;

/**
 * Every authenticated call. (`500 INTERNAL` is not a value: a 5xx other than
 * 503 is thrown as a QuotaClientError of kind `server`.)
 */
const EVERY = [...ANY_PATH_CODES, 'INVALID_REQUEST', 'UNAUTHENTICATED', 'RATE_LIMITED', 'UNAVAILABLE'] as const;
/** Calls that send a body: it can be too large, or too slow to arrive. */
const WITH_BODY = ['PAYLOAD_TOO_LARGE', 'REQUEST_TIMEOUT'] as const;
/** Admin routes: a client key is refused. */
const ADMIN = [...EVERY, 'FORBIDDEN'] as const;

export const OPERATION_CODES = {
  reserve: [
    ...EVERY,
    ...WITH_BODY,
    'PRODUCT_NOT_FOUND',
    'NO_CREDIT_LINE',
    'PRODUCT_CLOSED',
    'PRODUCT_PAUSED',
    'PRODUCT_NOT_OPEN',
    'ACCOUNT_PENDING_ACTIVATION',
    'ACCOUNT_FROZEN',
    'ACCOUNT_CLOSED',
    'AMOUNT_OUT_OF_RANGE',
    'CUSTOMER_LIMIT_EXCEEDED',
    'POOL_EXHAUSTED',
    'IDEMPOTENCY_KEY_REUSED',
  ],
  commit: [
    ...EVERY,
    ...WITH_BODY,
    'PRODUCT_NOT_FOUND',
    'RESERVATION_NOT_FOUND',
    'RESERVATION_EXPIRED',
    'RESERVATION_RELEASED',
    'RESERVATION_ALREADY_COMMITTED',
    'ACCOUNT_FROZEN',
    'ACCOUNT_CLOSED',
    'COMMIT_EXCEEDS_HOLD',
  ],
  release: [...EVERY, ...WITH_BODY, 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND', 'RESERVATION_ALREADY_COMMITTED'],
  getReservation: [...EVERY, 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND'],
  getLine: [...EVERY, 'PRODUCT_NOT_FOUND', 'NO_CREDIT_LINE'],
  getProduct: [...EVERY, 'PRODUCT_NOT_FOUND'],
  listProducts: [...EVERY],
  listCustomerReservations: [...EVERY, 'PRODUCT_NOT_FOUND'],
  repay: [
    ...EVERY,
    ...WITH_BODY,
    'PRODUCT_NOT_FOUND',
    'NO_CREDIT_LINE',
    'REPAYMENT_EXCEEDS_DRAWN',
    'IDEMPOTENCY_KEY_REUSED',
  ],
  // Admin routes.
  putProduct: [...ADMIN, ...WITH_BODY],
  patchProduct: [...ADMIN, ...WITH_BODY, 'PRODUCT_NOT_FOUND'],
  putLine: [...ADMIN, ...WITH_BODY, 'PRODUCT_NOT_FOUND'],
  bulkImportLines: [...ADMIN, ...WITH_BODY, 'PRODUCT_NOT_FOUND'],
  listReservations: [...ADMIN, 'PRODUCT_NOT_FOUND'],
  reservationEvents: [...ADMIN, 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND'],
  resolveSettlement: [
    ...ADMIN,
    ...WITH_BODY,
    'PRODUCT_NOT_FOUND',
    'RESERVATION_NOT_FOUND',
    'RESERVATION_STATE_CONFLICT',
  ],
  redriveSettlement: [...ADMIN, 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND', 'RESERVATION_STATE_CONFLICT'],
  internalLedger: [...ADMIN, 'PRODUCT_NOT_FOUND'],
} as const;

export type OperationId = keyof typeof OPERATION_CODES;
/** The codes one operation can answer. */
export type CodeOf<Op extends OperationId> = (typeof OPERATION_CODES)[Op][number];

/** Codes any authenticated call can answer, whatever the route. */
export type CommonCode = (typeof EVERY)[number];

export type ReserveCode = CodeOf<'reserve'>;
export type CommitCode = CodeOf<'commit'>;
export type ReleaseCode = CodeOf<'release'>;
export type GetReservationCode = CodeOf<'getReservation'>;
export type GetLineCode = CodeOf<'getLine'>;
export type GetProductCode = CodeOf<'getProduct'>;
export type ListProductsCode = CodeOf<'listProducts'>;
export type ListCustomerReservationsCode = CodeOf<'listCustomerReservations'>;
export type RepayCode = CodeOf<'repay'>;

// Admin routes.
export type PutProductCode = CodeOf<'putProduct'>;
export type PatchProductCode = CodeOf<'patchProduct'>;
export type PutLineCode = CodeOf<'putLine'>;
export type BulkImportCode = CodeOf<'bulkImportLines'>;
export type ListReservationsCode = CodeOf<'listReservations'>;
export type EventsCode = CodeOf<'reservationEvents'>;
export type ResolveCode = CodeOf<'resolveSettlement'>;
export type RedriveCode = CodeOf<'redriveSettlement'>;
export type LedgerCode = CodeOf<'internalLedger'>;

/** Every code an operation of the client can answer. */
export type ErrorCode = CodeOf<OperationId>;
