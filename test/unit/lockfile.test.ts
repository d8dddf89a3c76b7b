/**
 * `npm ci` must work on a fresh machine: package-lock.json needs an entry for
 * every optional platform build, including the ones this workplace's registry
 * does not serve (see scripts/complete-lockfile.cjs).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('package-lock.json is complete (run `npm run lockfile:complete` after npm install)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qa-lock-'));
  try {
    copyFileSync('package-lock.json', join(dir, 'package-lock.json'));
    const before = readFileSync(join(dir, 'package-lock.json'), 'utf8');
    execFileSync('node', ['scripts/complete-lockfile.cjs', join(dir, 'package-lock.json')], { stdio: 'ignore' });
    expect(readFileSync(join(dir, 'package-lock.json'), 'utf8')).toBe(before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
