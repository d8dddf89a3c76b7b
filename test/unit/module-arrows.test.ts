/**
 * Which way the imports run: the engine depends on no adapter (audit job,
 * HTTP, metrics), the Redis helpers on no engine module, and the service on
 * no part of the test ledger. Read from the sources (every `import` and
 * `export … from`), so an arrow that turns round fails here first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..', '..');

function sourcesUnder(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The repository paths a file imports (relative specifiers only, `.js` read as `.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const statements = /^\s*(?:import|export)\b[^'";]*?\bfrom\s+'([^']+)'|^\s*import\s+'([^']+)'/gm;
  const specifiers = [...text.matchAll(statements)].map((m) => m[1] ?? m[2]!);
  return specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).replace(/\.js$/, '.ts'));
}

/** `file -> imported` for every import of `from` that lands in one of `forbidden`. */
function wrongArrows(from: string, forbidden: string[]): string[] {
  return sourcesUnder(from).flatMap((file) =>
    importsOf(file)
      .filter((target) => forbidden.some((f) => target === f || target.startsWith(`${f}/`)))
      .map((target) => `${file} -> ${target}`),
  );
}

describe('module arrows', () => {
  it('reads the imports it checks (a parser that finds nothing would pass everything)', () => {
    expect(importsOf('src/engine/quotaEngine.ts')).toContain('src/engine/scriptCatalogue.ts');
    expect(importsOf('src/engine/types.ts')).toContain('src/reservationStatus.ts');
    expect(importsOf('testLedger/ledgerServer.ts')).toContain('src/bodySignature.ts');
    expect(sourcesUnder('src/engine')).toContain('src/engine/auditStep.ts');
  });

  it('the engine imports neither the audit job, nor HTTP, nor metrics', () => {
    expect(wrongArrows('src/engine', ['src/audit', 'src/http', 'src/metrics.ts', 'src/stateGauges.ts'])).toEqual([]);
  });

  it('src/redis imports no engine module', () => {
    expect(wrongArrows('src/redis', ['src/engine'])).toEqual([]);
  });

  it('nothing in src/ imports the test ledger, and it lives outside src/', () => {
    expect(wrongArrows('src', ['testLedger', 'src/ledger', 'test', 'bench'])).toEqual([]);
    expect(sourcesUnder('src').filter((f) => /ledgerServer|faultInjector|ledgerBook/.test(f))).toEqual([]);
  });

  it('only the composition root applies metrics to the engine: HTTP neither wraps it nor counts its decisions', () => {
    const app = readFileSync(join(ROOT, 'src/http/app.ts'), 'utf8');
    expect(app).not.toMatch(/instrumentEngine|\.decision\(/);
    expect(readFileSync(join(ROOT, 'src/main.ts'), 'utf8')).toMatch(/onDecision: metrics\.decision/);
  });
});
