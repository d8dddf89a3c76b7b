#!/usr/bin/env node
// A stable file for npm to link as the `quota` bin: it exists before the first build, so `npm ci` links it.
let main;
try {
  main = await import('../dist/main.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  process.stderr.write('quota: the CLI is not built yet: run `npm run build` in the repository first\n');
  process.exit(1);
}
process.exitCode = await main.run(process.argv.slice(2));
