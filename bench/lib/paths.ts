/** Where things are, from the compiled file (dist/bench/lib/paths.js) up. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/ (the compiled src/, bench/ and testLedger/). */
export const distDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repository (bench/lua, bench/results). */
export const repoDir = resolve(distDir, '..');

export const serviceMain = join(distDir, 'src', 'main.js');
export const ledgerMain = join(distDir, 'testLedger', 'main.js');
export const bareRouteMain = join(distDir, 'bench', 'baselines', 'bareExpressRoute.js');
export const benchLuaDir = join(repoDir, 'bench', 'lua');
export const resultsDir = join(repoDir, 'bench', 'results');
