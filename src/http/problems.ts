/**
 * problem+json (RFC 9457) answers, from the error catalogue
 * (src/errors/catalogue.ts). A problem is built as its code and the
 * parameters of its detail; the title and detail are rendered when it is
 * sent, in the language the request asks for (Accept-Language). So a
 * replayed refusal (stored as its code and context) answers the same body
 * again, and only title and detail change when the retry asks for another
 * language.
 */
import type { Request, Response } from 'express';
import { CATALOGUE, textsOf, type DetailParams, type ErrorCode } from '../errors/catalogue.js';
import { chooseLanguage, type Language } from '../errors/language.js';
import { sendJson } from './sendJson.js';

export type { ErrorCode } from '../errors/catalogue.js';

/** The problem table: each code's status and English title (the catalogue holds the rest). */
export const PROBLEMS: Record<ErrorCode, { status: number; title: string }> = Object.fromEntries(
  Object.entries(CATALOGUE).map(([code, entry]) => [code, { status: entry.status, title: entry.en.title }]),
) as Record<ErrorCode, { status: number; title: string }>;

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  [extension: string]: unknown;
}

/** A problem before its language is known. */
export interface ProblemDraft {
  code: ErrorCode;
  params: DetailParams;
  extensions: Record<string, unknown>;
}

export function problem(
  code: ErrorCode,
  params: DetailParams = {},
  extensions: Record<string, unknown> = {},
): ProblemDraft {
  return { code, params, extensions };
}

/** The body of a problem in a language. */
export function renderProblem(draft: ProblemDraft, language: Language): Problem {
  const { code, params, extensions } = draft;
  const { title, detail } = textsOf(code, params, language);
  return {
    type: `urn:quota-allocator:problem:${code}`,
    title,
    status: CATALOGUE[code].status,
    code,
    detail,
    ...extensions,
  };
}

/** The language a request asks for. */
export function languageOf(req: Pick<Request, 'headers'> | undefined): Language {
  return chooseLanguage(req?.headers['accept-language']);
}

export interface ProblemOptions {
  /** Absolute time (ms) when retrying makes sense; becomes Retry-After. */
  retryAt?: number | undefined;
  /** The clock `retryAt` is measured against (the Redis server's, for quota decisions). */
  now?: number | undefined;
  retryAfterSeconds?: number | undefined;
}

export function sendProblem(res: Response, draft: ProblemDraft, options: ProblemOptions = {}): void {
  const language = languageOf(res.req);
  const body = renderProblem(draft, language);
  let retryAfter = options.retryAfterSeconds;
  if (options.retryAt !== undefined) retryAfter = Math.ceil((options.retryAt - (options.now ?? Date.now())) / 1000);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, retryAfter)));
  res.setHeader('Content-Language', language === 'zh' ? 'zh-CN' : 'en');
  // (What res.vary does when there is no Vary yet, without parsing one.)
  if (res.getHeader('Vary') === undefined) res.setHeader('Vary', 'Accept-Language');
  else res.vary('Accept-Language');
  // Only server errors carry the request id in the body: 4xx bodies must stay
  // byte-identical when an idempotent answer is replayed (the header has it anyway).
  const requestId = body.status >= 500 ? res.getHeader('X-Request-Id') : undefined;
  sendJson(res, body.status, requestId ? { ...body, requestId } : body, 'application/problem+json');
}
