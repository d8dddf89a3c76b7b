// The files the format and line-length checks cover: tracked code under the project's source folders and the
// configuration code at the root (eslint.config.mjs, vitest.config.ts).
// Markdown, JSON, YAML, generated output and lockfiles are not code and keep their own layout.
import { execFileSync } from 'node:child_process';

export const MAX_LINE = 120;
export const FOLDERS = ['src', 'test', 'bench', 'packages', 'console', 'scripts', 'testLedger', 'lua'];
export const CODE = /\.(ts|tsx|mts|cts|js|mjs|cjs|lua)$/;

/** Tracked (and new, not ignored) code files under FOLDERS or at the root, or the ones given as arguments. */
export function codeFiles(args = process.argv.slice(2)) {
  if (args.length > 0) return args.filter((f) => CODE.test(f));
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const covered = (f) => !f.includes('/') || FOLDERS.some((folder) => f.startsWith(`${folder}/`));
  return [...new Set(listed.split('\n'))].filter((f) => f && CODE.test(f) && covered(f) && !f.includes('/dist/'));
}
