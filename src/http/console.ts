/**
 * The operators' web console at /console (contract: "The console"): static
 * files built by scripts/build-console.mjs into dist/console. No key is
 * needed to load the page; it signs in with an API key and then calls the
 * published /v1 API like any client. A strict Content-Security-Policy keeps
 * the page to this origin: scripts, styles, images and API calls.
 * Mounted at /console (app.ts), so the paths here are relative to it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** dist/console, found by walking up from this module (src/http under vitest, dist/src/http when built). */
export function findConsoleDir(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'dist', 'console');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

export function consoleRoutes(dir = findConsoleDir()): express.Router {
  const router = express.Router();
  router.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-cache');
    next();
  });
  if (!dir) {
    router.use((_req, res) => {
      res
        .status(503)
        .type('text/plain')
        .send('The console is not built: run `npm run build` (or `node scripts/build-console.mjs`).\n');
    });
    return router;
  }
  const index = join(dir, 'index.html');
  router.get('/', (_req, res) => res.sendFile(index));
  router.use(express.static(dir, { index: false, redirect: false }));
  router.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });
  return router;
}
