#!/usr/bin/env node
/**
 * Builds the operators' web console (console/) into dist/console: one ES
 * module bundle (Preact and @quota-allocator/client included, so the page
 * loads nothing from outside the service), its stylesheet and index.html.
 * Run by `npm run build` (postbuild) and by test/system/console.test.ts.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'console');

await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(root, 'console', 'src', 'main.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // The client's source, not its dist: no client build needed first (also in the Docker build stage).
  alias: { '@quota-allocator/client': join(root, 'packages', 'client', 'src', 'index.ts') },
  // The client reads a bulk-import file with a lazy import('node:fs'); the console never imports in bulk.
  external: ['node:*'],
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css', 'favicon.svg'])
  await copyFile(join(root, 'console', file), join(out, file));
console.log(`console built into ${out}`);
