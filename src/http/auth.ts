/**
 * Bearer API keys with roles. Keys are compared in constant time (over
 * SHA-256 digests, so lengths leak nothing either); every configured key is
 * compared, whichever matches.
 *
 * Browser pages (the bull-board dashboard) may also take the key as the
 * password of HTTP Basic auth, any user name: a browser cannot add a Bearer
 * header, but it prompts for Basic credentials and resends them itself.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ApiKey, Role } from '../config.js';
import { problem, sendProblem } from './problems.js';
import type { RateLimits } from './rateLimits.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function createAuth(apiKeys: ApiKey[], rateLimits?: Pick<RateLimits, 'checkKey'>) {
  const known = apiKeys.map((k) => ({ role: k.role, digest: digest(k.key) }));

  function presentedKey(header: string | undefined, allowBasic: boolean): string | undefined {
    const bearer = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (bearer) return bearer[1];
    const basic = allowBasic && header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    if (!basic) return undefined;
    const credentials = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = credentials.indexOf(':');
    return colon >= 0 && colon < credentials.length - 1 ? credentials.slice(colon + 1) : undefined;
  }

  function callerOf(header: string | undefined, allowBasic: boolean): { role: Role; keyId: string } | undefined {
    const key = presentedKey(header, allowBasic);
    if (key === undefined) return undefined;
    const presented = digest(key);
    let role: Role | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, presented)) role = role === 'admin' ? role : k.role;
    return role && { role, keyId: presented.subarray(0, 8).toString('hex') };
  }

  /**
   * Middleware: the caller must hold `role` (admin may do everything).
   * `browser`: also accept the key as a Basic auth password, and ask for it so a browser prompts.
   */
  return function requireRole(role: Role, { browser = false }: { browser?: boolean } = {}) {
    return async (req: Request, res: Response, next: NextFunction) => {
      const caller = callerOf(req.headers.authorization, browser);
      const callerRole = caller?.role;
      if (!caller || !callerRole) {
        res.setHeader('WWW-Authenticate', browser ? 'Basic realm="quota-allocator admin", charset="UTF-8"' : 'Bearer');
        const how = browser ? 'Authorization: Bearer <key>, or Basic auth with the key as the password' : 'Authorization: Bearer <key>';
        return sendProblem(res, problem('UNAUTHENTICATED', `send ${how} with a known key`));
      }
      if (role === 'admin' && callerRole !== 'admin') {
        return sendProblem(res, problem('FORBIDDEN', 'this operation needs an admin key'));
      }
      res.locals.role = callerRole;
      await rateLimits?.checkKey(caller.keyId);
      next();
    };
  };
}

export type RequireRole = ReturnType<typeof createAuth>;
