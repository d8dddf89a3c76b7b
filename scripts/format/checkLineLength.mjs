// Fails (exit 1) naming every line over MAX_LINE characters in the code files (see files.mjs).
import { existsSync, readFileSync } from 'node:fs';
import { MAX_LINE, codeFiles } from './files.mjs';

const long = [];
for (const file of codeFiles()) {
  if (!existsSync(file)) continue;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if ([...line].length > MAX_LINE) long.push(`${file}:${i + 1}: ${[...line].length} characters`);
    });
}
if (long.length > 0) {
  console.error(`${long.length} line(s) over ${MAX_LINE} characters:\n${long.join('\n')}`);
  process.exit(1);
}
