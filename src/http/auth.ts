/**
 * Bearer API keys with roles. Keys are compared in constant time (over
 * SHA-256 digests, so lengths leak nothing either); every configured key is
 * compared, whichever matches.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ApiKey, Role } from '../config.js';
import { problem, sendProblem } from './problems.js';
import type { RateLimits } from './rateLimits.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function createAuth(apiKeys: ApiKey[], rateLimits?: Pick<RateLimits, 'checkKey'>) {
  const known = apiKeys.map((k) => ({ role: k.role, digest: digest(k.key) }));

  function callerOf(header: string | undefined): { role: Role; keyId: string } | undefined {
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) return undefined;
    const presented = digest(match[1]!);
    let role: Role | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, presented)) role = role === 'admin' ? role : k.role;
    return role && { role, keyId: presented.subarray(0, 8).toString('hex') };
  }

  /** Middleware: the caller must hold `role` (admin may do everything). */
  return function requireRole(role: Role) {
    return async (req: Request, res: Response, next: NextFunction) => {
      const caller = callerOf(req.headers.authorization);
      const callerRole = caller?.role;
      if (!caller || !callerRole) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        return sendProblem(res, problem('UNAUTHENTICATED', 'send Authorization: Bearer <key> with a known key'));
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
