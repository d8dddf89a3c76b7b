/**
 * Bearer API keys with roles. Keys are compared in constant time (over
 * SHA-256 digests, so lengths leak nothing either); every configured key is
 * compared, whichever matches.
 *
 * Browser pages (the bull-board dashboard) may also take the key as the
 * password of HTTP Basic auth, any user name: a browser cannot add a Bearer
 * header, but it prompts for Basic credentials and resends them itself.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ApiKey, Role } from '../config.js';
import { problem, sendProblem } from './problems.js';
import type { RateLimits } from './rateLimits.js';

// One-shot hash: no Hash object per request (createHash + update + digest cost twice as much).
const digest = (s: string) => hash('sha256', s, 'buffer');

interface Caller {
  readonly role: Role;
  readonly name: string;
  /** The first 8 bytes of the key's digest, hex: the rate limit's key. */
  readonly keyId: string;
}

interface KnownKey {
  role: Role;
  name: string;
  digest: Buffer;
}

/**
 * `apiKeys`: the keys, or a function giving the keys in force now (a reloadable
 * store); their digests are recomputed only when that list changes.
 */
export function createAuth(
  apiKeys: readonly ApiKey[] | (() => readonly ApiKey[]),
  rateLimits?: Pick<RateLimits, 'checkKey'>,
) {
  const source = typeof apiKeys === 'function' ? apiKeys : () => apiKeys;
  let compiledFrom: readonly ApiKey[] | undefined;
  let compiled: KnownKey[] = [];
  const knownKeys = () => {
    const keys = source();
    if (keys !== compiledFrom) {
      compiled = keys.map((k) => ({ role: k.role, name: k.name, digest: digest(k.key) }));
      compiledFrom = keys;
    }
    return compiled;
  };

  function presentedKey(header: string | undefined, allowBasic: boolean): string | undefined {
    const bearer = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (bearer) return bearer[1];
    const basic = allowBasic && header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!basic) return undefined;
    const credentials = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = credentials.indexOf(':');
    return colon >= 0 && colon < credentials.length - 1 ? credentials.slice(colon + 1) : undefined;
  }

  // Callers by the key they presented, valid keys only (so at most as many entries as keys
  // configured), emptied whenever the keys change. A known key skips the digest and the compares
  // (issue 11: they were about 3% of a reserve's CPU); an unknown one still goes through every
  // compare. That a hit answers sooner tells a caller only what the answer itself does: the key is valid.
  let callersFor: readonly KnownKey[] | undefined;
  const callers = new Map<string, Caller>();

  function callerOf(header: string | undefined, allowBasic: boolean): Caller | undefined {
    const key = presentedKey(header, allowBasic);
    if (key === undefined) return undefined;
    const known = knownKeys();
    if (callersFor !== known) {
      callers.clear();
      callersFor = known;
    }
    const cached = callers.get(key);
    if (cached) return cached;
    const presented = digest(key);
    let match: KnownKey | undefined;
    // Every key is compared (no early exit); the same key listed twice counts as its strongest role.
    for (const k of known) if (timingSafeEqual(k.digest, presented) && match?.role !== 'admin') match = k;
    if (!match) return undefined;
    const caller: Caller = { role: match.role, name: match.name, keyId: presented.subarray(0, 8).toString('hex') };
    callers.set(key, caller);
    return caller;
  }

  /**
   * Middleware: the caller must hold `role` (admin may do everything).
   * `browser`: also accept the key as a Basic auth password, and ask for it so a browser prompts.
   */
  return function requireRole(role: Role, { browser = false }: { browser?: boolean } = {}) {
    return async (req: Request, res: Response, next: NextFunction) => {
      // An admin route of the API is logged whatever LOG_REQUESTS says (src/http/requestLog.ts); the dashboard's
      // pages and assets (browser) are not.
      if (role === 'admin' && !browser) res.locals.adminRoute = true;
      const caller = callerOf(req.headers.authorization, browser);
      const callerRole = caller?.role;
      if (!caller || !callerRole) {
        res.setHeader('WWW-Authenticate', browser ? 'Basic realm="quota-allocator admin", charset="UTF-8"' : 'Bearer');
        const how = browser
          ? 'Authorization: Bearer <key>, or Basic auth with the key as the password'
          : 'Authorization: Bearer <key>';
        return sendProblem(res, problem('UNAUTHENTICATED', { message: `send ${how} with a known key` }));
      }
      // The request log line names the key (never the key itself): who did what, refusals included.
      res.locals.keyName = caller.name;
      if (role === 'admin' && callerRole !== 'admin') {
        return sendProblem(res, problem('FORBIDDEN', { message: 'this operation needs an admin key' }));
      }
      res.locals.role = callerRole;
      await rateLimits?.checkKey(caller.keyId);
      next();
    };
  };
}

export type RequireRole = ReturnType<typeof createAuth>;
