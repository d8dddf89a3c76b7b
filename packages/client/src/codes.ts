/**
 * Which error codes each operation can answer, per the contract's error
 * table and precedence rules: a caller that switches on `problem.code` gets
 * only the codes that route can really send, and a typo or a code of another
 * route is a compile error.
 */

/** Codes any authenticated call can answer, whatever the route. */
export type CommonCode =
  | 'INVALID_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'PAYLOAD_TOO_LARGE'
  | 'REQUEST_TIMEOUT'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  // A deployment without this route (an older version, or a wrong base path).
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED';

export type ReserveCode =
  | CommonCode
  | 'PRODUCT_NOT_FOUND'
  | 'NO_CREDIT_LINE'
  | 'PRODUCT_CLOSED'
  | 'PRODUCT_PAUSED'
  | 'PRODUCT_NOT_OPEN'
  | 'ACCOUNT_PENDING_ACTIVATION'
  | 'ACCOUNT_FROZEN'
  | 'ACCOUNT_CLOSED'
  | 'AMOUNT_OUT_OF_RANGE'
  | 'CUSTOMER_LIMIT_EXCEEDED'
  | 'POOL_EXHAUSTED'
  | 'IDEMPOTENCY_KEY_REUSED';

export type CommitCode =
  | CommonCode
  | 'PRODUCT_NOT_FOUND'
  | 'RESERVATION_NOT_FOUND'
  | 'RESERVATION_EXPIRED'
  | 'RESERVATION_RELEASED'
  | 'RESERVATION_ALREADY_COMMITTED'
  | 'ACCOUNT_FROZEN'
  | 'ACCOUNT_CLOSED'
  | 'COMMIT_EXCEEDS_HOLD';

export type ReleaseCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'RESERVATION_NOT_FOUND' | 'RESERVATION_ALREADY_COMMITTED';
export type GetReservationCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'RESERVATION_NOT_FOUND';
export type GetLineCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'NO_CREDIT_LINE';
export type GetProductCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type ListProductsCode = CommonCode;
export type ListCustomerReservationsCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type RepayCode =
  CommonCode | 'PRODUCT_NOT_FOUND' | 'NO_CREDIT_LINE' | 'REPAYMENT_EXCEEDS_DRAWN' | 'IDEMPOTENCY_KEY_REUSED';

// Admin routes.
export type PutProductCode = CommonCode;
export type PatchProductCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type PutLineCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type BulkImportCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type ListReservationsCode = CommonCode | 'PRODUCT_NOT_FOUND';
export type EventsCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'RESERVATION_NOT_FOUND';
export type ResolveCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'RESERVATION_NOT_FOUND' | 'RESERVATION_STATE_CONFLICT';
export type RedriveCode = CommonCode | 'PRODUCT_NOT_FOUND' | 'RESERVATION_NOT_FOUND' | 'RESERVATION_STATE_CONFLICT';
export type LedgerCode = CommonCode | 'PRODUCT_NOT_FOUND';

/** Every code the contract defines. */
export type ErrorCode = ReserveCode | CommitCode | ReleaseCode | RepayCode | ResolveCode;
