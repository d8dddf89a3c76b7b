/**
 * Routes stay thin: validate with these, call the engine, and hand the
 * Outcome to sendOutcome with the value's wire form (src/wireFormat.ts).
 */
import express, { type Request, type Response } from 'express';
import type { z } from 'zod';
import type { Outcome, Refusal } from '../engine/types.js';
import { readCompleteJson } from './completeBody.js';
import { sendJson } from './sendJson.js';
import { withBodyTimeout } from './deadline.js';
import { MAX_JSON_DEPTH, jsonDepthExceeds } from './jsonDepth.js';
import {
  problem,
  renderProblem,
  sendProblem,
  type ErrorCode,
  type ProblemDraft,
  type ProblemOptions,
} from './problems.js';

/** A request problem found before the engine is called (400, 413...). */
export class HttpProblem extends Error {
  constructor(
    readonly body: ProblemDraft,
    readonly options: ProblemOptions = {},
  ) {
    super(renderProblem(body, 'en').detail);
  }
}

export function invalid(detail: string, errors?: { field: string; message: string }[]): HttpProblem {
  const params = { message: detail, fields: errors?.map((e) => e.field) ?? [] };
  return new HttpProblem(problem('INVALID_REQUEST', params, errors ? { errors } : {}));
}

/** Parses `value` or throws 400 INVALID_REQUEST naming each failing field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const protoPath = protoKeyPath(value, where);
  if (protoPath)
    throw invalid(`${protoPath}: a "__proto__" key is not accepted`, [
      { field: protoPath, message: 'a "__proto__" key is not accepted' },
    ]);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = result.error.issues.flatMap((i) =>
    // An unknown key is named as the field it is (body.ammount), not as its parent.
    i.code === 'unrecognized_keys'
      ? i.keys.map((key) => ({ field: [where, ...i.path.map(String), key].join('.'), message: 'unknown field' }))
      : [{ field: [where, ...i.path.map(String)].join('.'), message: i.message }],
  );
  throw invalid(errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
}

/**
 * Where `value` holds an own "__proto__" key, if anywhere. JSON.parse keeps
 * such a key, but zod copies records key by key and the copy silently drops
 * it: metadata would not be what the client sent. So it is refused instead.
 * Iterative (an explicit stack, paths built only for the answer) and bounded
 * by the contract's nesting limit, so no value can blow the call stack or
 * cost quadratic time; deeper values are refused as too deep.
 */
function protoKeyPath(value: unknown, root: string): string | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: root, depth: 0 }];
  while (stack.length > 0) {
    const { value: node, path, depth } = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) throw tooDeep(root);
    if (Object.hasOwn(node, '__proto__')) return `${path}.__proto__`;
    for (const [key, child] of Object.entries(node)) {
      if (child !== null && typeof child === 'object')
        stack.push({ value: child, path: `${path}.${key}`, depth: depth + 1 });
    }
  }
  return undefined;
}

/** 400 for JSON nested deeper than the contract allows. */
export function tooDeep(where: string): HttpProblem {
  const message = `nested deeper than ${MAX_JSON_DEPTH} levels`;
  return invalid(`${where}: ${message}`, [{ field: where, message }]);
}

/** Reads the request's Idempotency-Key header (400 naming the header when missing or malformed). */
export function idempotencyKeyOf(req: Request, schema: z.ZodType<string>): string {
  return parse(schema, req.get('Idempotency-Key'), 'header.Idempotency-Key');
}

/** The contract's default for BODY_TIMEOUT_MS. */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

/** 408: the body did not arrive in time; nothing was done. */
export function bodyTimedOut(timeoutMs: number): HttpProblem {
  return new HttpProblem(
    problem('REQUEST_TIMEOUT', {
      message: `the request body did not arrive within ${timeoutMs} ms; nothing was done, retry at once`,
      timeoutMs,
    }),
  );
}

export type JsonBodyReader = (req: Request, res: Response) => Promise<unknown>;

const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * Reads a JSON body on demand, so a route checks its path and headers first:
 * the contract answers 400 before 413, and a body is only read once the
 * request is otherwise valid. A missing body reads as undefined; a body that
 * is not declared JSON is a 400 (ignoring it would turn `{ amount }` sent as
 * a form into a commit of the whole hold).
 */
export function createJsonBodyReader(
  limitBytes: number,
  bodyTimeoutMs: number = DEFAULT_BODY_TIMEOUT_MS,
): JsonBodyReader {
  const json = express.json({
    limit: limitBytes,
    strict: true,
    type: JSON_TYPES,
    // Runs on the raw bytes before JSON.parse: a too-deep body is refused unbuilt.
    // (body-parser wraps what verify throws as a 403 'entity.verify.failed'; the reader below turns it into the 400.)
    verify: (_req, _res, raw) => {
      if (jsonDepthExceeds(raw)) throw new Error('too deep');
    },
  });
  return (req, res) => {
    const complete = readCompleteJson(req, limitBytes, () => tooDeep('body'));
    if (complete) return complete;
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody && !req.is(JSON_TYPES)) {
      const message = 'must be application/json when a body is sent';
      return Promise.reject(invalid(`header.Content-Type: ${message}`, [{ field: 'header.Content-Type', message }]));
    }
    const read = () =>
      new Promise<unknown>((resolve, reject) => {
        json(req, res, (err?: unknown) => {
          if ((err as { type?: string } | undefined)?.type === 'entity.verify.failed') reject(tooDeep('body'));
          else if (err) reject(err);
          else resolve(req.body);
        });
      });
    return withBodyTimeout(res, bodyTimeoutMs, read, () => bodyTimedOut(bodyTimeoutMs));
  };
}

/**
 * Answers an outcome: the value shown by `toJson` (src/wireFormat.ts) with
 * `okStatus`, or the refusal's problem.
 */
export function sendOutcome<T>(
  res: Response,
  outcome: Outcome<T>,
  okStatus: number,
  toJson: (value: T) => unknown,
  headers: Record<string, string> = {},
): void {
  if (!outcome.ok) return sendRefusal(res, outcome);
  if (outcome.replayed) res.setHeader('Idempotent-Replayed', 'true');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  sendJson(res, okStatus, toJson(outcome.value));
}

/** Answers a refusal as its problem (the two codes about the request itself as 400). */
export function sendRefusal(res: Response, refusal: Refusal): void {
  if (refusal.replayed) res.setHeader('Idempotent-Replayed', 'true');
  const { code, context, now } = refusal;
  if (code === 'TTL_OUT_OF_RANGE') {
    throw invalid(`body.ttlSeconds: must be at most the product's holdTtlSeconds (${context.holdTtlSeconds})`, [
      { field: 'body.ttlSeconds', message: `must be at most ${context.holdTtlSeconds}` },
    ]);
  }
  if (code === 'INVALID_CONFIG') {
    throw invalid(`body.${context.field}: ${context.reason}`, [
      { field: `body.${context.field}`, message: String(context.reason) },
    ]);
  }
  const errorCode: ErrorCode = code;
  const extensions: Record<string, unknown> = {};
  if (context.drawable !== undefined) extensions.drawable = context.drawable;
  sendProblem(res, problem(errorCode, context, extensions), {
    retryAt: code === 'PRODUCT_NOT_OPEN' || code === 'PRODUCT_PAUSED' ? context.retryAt : undefined,
    now,
  });
}
