export { QuotaClient, QuotaAdmin, type QuotaClientOptions } from './client.js';
export { QuotaClientError, type BrokenCallKind, type KeyedResult, type Problem, type Result } from './result.js';
export type { RetryEvent } from './transport.js';
export type { BulkSource } from './ndjson.js';
export { ANY_PATH_CODES, OPERATION_CODES } from './codes.js';
export type * from './codes.js';
export type * from './types.js';
