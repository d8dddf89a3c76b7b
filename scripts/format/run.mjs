// `npm run format`: for each code file (files.mjs), Prettier, then the literal splitter and the comment
// re-flower on whatever lines are still over MAX_LINE characters, then Prettier again so the pieces are laid
// out as it would. Lua is not Prettier's: only its comments are re-flowed. Running it twice changes nothing.
// Usage: node scripts/format/run.mjs [file...]
import { readFileSync, writeFileSync } from 'node:fs';
import * as prettier from 'prettier';
import { codeFiles } from './files.mjs';
import { reflowComments } from './reflowComments.mjs';
import { splitLiterals } from './splitLiterals.mjs';

const IGNORE = ['.gitignore', '.prettierignore'];
const MAX_PASSES = 5;

async function pretty(file, source) {
  const info = await prettier.getFileInfo(file, { ignorePath: IGNORE });
  if (info.ignored || !info.inferredParser) return source;
  const options = await prettier.resolveConfig(file);
  return prettier.format(source, { ...options, filepath: file });
}

let changed = 0;
for (const file of codeFiles()) {
  const source = readFileSync(file, 'utf8');
  let out = source;
  // Until nothing changes: Prettier is not always stable in one pass, and its re-indenting after a split can
  // push another line over the limit.
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const pretty1 = await pretty(file, out);
    const wrapped = reflowComments(file, file.endsWith('.lua') ? pretty1 : splitLiterals(file, pretty1));
    const next = wrapped === pretty1 ? pretty1 : await pretty(file, wrapped);
    if (next === out) break;
    out = next;
  }
  if (out !== source) {
    writeFileSync(file, out);
    changed++;
  }
}
console.log(`format: ${changed} file(s) changed`);
