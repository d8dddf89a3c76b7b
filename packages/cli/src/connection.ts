/**
 * From `--url`/`--key` (or QUOTA_URL / QUOTA_API_KEY) to a QuotaClient, and
 * from an API answer to a clear sentence and an exit code.
 */
import { QuotaClient, QuotaClientError, type Problem, type Result } from '@quota-allocator/client';
import { CliError, EXIT } from './exitCodes.js';
import type { Io } from './io.js';

export interface ConnectionOptions {
  url?: string;
  key?: string;
  lang?: string;
  retries?: string;
}

export interface Connection {
  client: QuotaClient;
  url: string;
}

export function connect(options: ConnectionOptions, io: Io): Connection {
  const url = options.url ?? io.env.QUOTA_URL;
  const key = options.key ?? io.env.QUOTA_API_KEY;
  if (!url)
    throw new CliError(
      'no deployment given: pass --url <base URL> or set QUOTA_URL (e.g. http://127.0.0.1:3000)',
      EXIT.USAGE,
    );
  if (!/^https?:\/\/[^/]+/.test(url)) throw new CliError(`--url must be an http(s) URL, got "${url}"`, EXIT.USAGE);
  if (!key) throw new CliError('no API key given: pass --key <key> or set QUOTA_API_KEY', EXIT.AUTH);
  const maxRetries = options.retries === undefined ? 3 : Number(options.retries);
  if (!Number.isInteger(maxRetries) || maxRetries < 0)
    throw new CliError('--retries must be a whole number', EXIT.USAGE);
  const language = options.lang === 'zh' ? 'zh-CN' : options.lang;
  return { client: new QuotaClient({ baseUrl: url, apiKey: key, maxRetries, ...(language ? { language } : {}) }), url };
}

/** The value of a successful answer; a refusal becomes a CliError with the matching exit code. */
export function valueOf<T, C extends string>(result: Result<T, C>, what: string): T {
  if (result.ok) return result.value;
  throw problemError(result.problem, what);
}

export function problemError(problem: Problem, what: string): CliError {
  const text = `${what}: ${problem.code} (${problem.status}): ${problem.detail}`;
  const details = { problem };
  if (problem.status === 401) return new CliError(`${text} (check --key / QUOTA_API_KEY)`, EXIT.AUTH, details);
  if (problem.status === 403) return new CliError(`${text} (this needs an admin key)`, EXIT.AUTH, details);
  if (problem.code === 'ROUTE_NOT_FOUND')
    return new CliError(`${text} (is --url the service's base URL, without /v1?)`, EXIT.NOT_FOUND, details);
  if (problem.status === 404) return new CliError(text, EXIT.NOT_FOUND, details);
  if (problem.status === 503) return new CliError(text, EXIT.UNREACHABLE, details);
  if (problem.status === 400) return new CliError(text, EXIT.USAGE, details);
  return new CliError(text, EXIT.FAILURE, details);
}

/** A broken call (nothing answered, or not the API answering) as a CliError. */
export function brokenCallError(err: QuotaClientError): CliError {
  if (err.kind === 'network') return new CliError(`cannot reach the deployment: ${err.message}`, EXIT.UNREACHABLE);
  if (err.kind === 'unexpected-answer')
    return new CliError(`the URL does not answer like the quota-allocator API: ${err.message}`, EXIT.FAILURE);
  return new CliError(`the deployment failed: ${err.message}`, EXIT.FAILURE);
}
