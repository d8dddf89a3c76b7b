/**
 * The narrowed error codes, proven by the compiler: narrowing.fixture.ts
 * compiles only if every line marked @ts-expect-error is an error (a code
 * the operation cannot answer), and the same file without the marks fails
 * with those errors.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

const run = promisify(execFile);
const dir = 'test/unit/client';
const tsconfig = `${dir}/.tsconfig.narrowing.json`;
const negative = `${dir}/.narrowing-unmarked.ts`;
const readmeExample = `${dir}/.readme-example.ts`;

async function tsc(...files: string[]): Promise<{ code: number; output: string }> {
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: '../../../tsconfig.json',
      include: [],
      files: files.map((f) => f.replace(`${dir}/`, '')),
    }),
  );
  try {
    const { stdout } = await run('npx', ['tsc', '-p', tsconfig, '--noEmit'], { encoding: 'utf8' });
    return { code: 0, output: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, output: e.stdout };
  }
}

afterAll(() => {
  rmSync(tsconfig, { force: true });
  rmSync(negative, { force: true });
  rmSync(readmeExample, { force: true });
});

/** The README's client example (the first ts block of its "Client library (TypeScript)" section). */
function extractReadmeExample(): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Client library (TypeScript)'));
  const match = /```ts\n(import [\s\S]*?)```/.exec(section);
  if (!match) throw new Error('no client example in the README');
  return match[1]!;
}

it(
  'narrowed codes compile (and the README example with them); a ' + 'code the operation cannot answer is a type error',
  async () => {
    writeFileSync(readmeExample, extractReadmeExample());
    const marked = await tsc(`${dir}/narrowing.fixture.ts`, readmeExample);
    expect(marked.output).toBe('');
    expect(marked.code).toBe(0);

    const source = readFileSync(`${dir}/narrowing.fixture.ts`, 'utf8');
    const marks = source.split('\n').filter((l) => l.includes('// @ts-expect-error')).length;
    writeFileSync(negative, source.replace(/^\s*\/\/ @ts-expect-error.*\n/gm, ''));
    const unmarked = await tsc(negative);
    expect(unmarked.code).not.toBe(0);
    const errors = unmarked.output.split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors).toHaveLength(marks);
    expect(unmarked.output).toMatch(/'"COMMIT_EXCEEDS_HOLD"'/);
    expect(unmarked.output).toMatch(/'"POOL_EXHAUSTD"'/);
    expect(unmarked.output).toMatch(/Property 'idempotencyKey' does not exist/);
  },
  120_000,
);
