// Re-wraps comments on lines over MAX_LINE characters: `//` comments on their own line (with the lines that
// continue their paragraph), trailing `//` comments (moved onto their own lines above the code), lines of
// `/* */` blocks (one-line `/** ... */` blocks become multi-line), and `--` comments on their own line in
// Lua. Comments are found by the TypeScript parser, so text in strings, templates or JSX is never touched.
// Usage: node reflowComments.mjs [file...]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MAX_LINE, codeFiles } from './files.mjs';

const ts = createRequire(import.meta.url)('typescript');
const width = (s) => [...s].length;
const LIST_ITEM = /^([-*•]|\d+[.)]|@\w)/;
// Comments a tool reads (their place and their line matter): left as they are.
const DIRECTIVE = /^\s*(@ts-|eslint|prettier-ignore|#|\/ <reference|istanbul|c8 |v8 )/;

/** Greedy wrap of words into lines of at most `limit` characters; a longer word gets a line of its own. */
function wrap(text, limit) {
  const out = [];
  let current = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (current && width(current) + 1 + width(word) > limit) {
      out.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) out.push(current);
  return out;
}

/** Start offsets of every comment, by kind, found in the trivia before and after each token. */
function commentsOf(file, source) {
  const kind = file.endsWith('x') ? ts.ScriptKind.TSX : file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, kind);
  const comments = new Map();
  const add = (pos, end, kind) => {
    comments.set(pos, { pos, end, kind }); // (a truthy return would stop the walk over the trivia)
  };
  const visit = (node) => {
    if (node.kind === ts.SyntaxKind.JsxText) return;
    if (node.kind >= ts.SyntaxKind.FirstToken && node.kind <= ts.SyntaxKind.LastToken) {
      ts.forEachLeadingCommentRange(source, node.pos, add);
      ts.forEachTrailingCommentRange(source, node.end, add);
      return;
    }
    for (const child of node.getChildren(sf)) visit(child);
  };
  visit(sf);
  return { comments, sf };
}

function reflowScript(file, source) {
  const lines = source.split('\n');
  if (!lines.some((l) => width(l) > MAX_LINE)) return source;
  const { comments, sf } = commentsOf(file, source);
  const lineStart = (i) => sf.getPositionOfLineAndCharacter(i, 0);
  const blockLines = new Set(); // lines inside a /* */ comment, after its first
  for (const c of comments.values()) {
    if (c.kind !== ts.SyntaxKind.MultiLineCommentTrivia) continue;
    const first = sf.getLineAndCharacterOfPosition(c.pos).line;
    const last = sf.getLineAndCharacterOfPosition(c.end).line;
    for (let i = first + 1; i <= last; i++) blockLines.add(i);
  }
  /** The `//` comment that starts at the first non-blank character of line i, if any. */
  const ownLineComment = (i) => {
    const m = /^(\s*)\/\/( ?)(.*)$/.exec(lines[i] ?? '');
    if (!m) return undefined;
    const c = comments.get(lineStart(i) + m[1].length);
    return c && c.kind === ts.SyntaxKind.SingleLineCommentTrivia ? { indent: m[1], text: m[3] } : undefined;
  };
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (width(line) <= MAX_LINE) {
      out.push(line);
      continue;
    }
    const own = ownLineComment(i);
    if (own && !DIRECTIVE.test(own.text)) {
      // The paragraph: this line and the `//` lines after it that continue it (same indent, not a list item).
      let text = own.text;
      while (i + 1 < lines.length) {
        const next = ownLineComment(i + 1);
        if (!next || next.indent !== own.indent || !next.text.trim() || LIST_ITEM.test(next.text.trim())) break;
        text += ` ${next.text}`;
        i++;
      }
      for (const l of wrap(text, MAX_LINE - own.indent.length - 3)) out.push(`${own.indent}// ${l}`);
      continue;
    }
    const block = blockLines.has(i) ? /^(\s*\*\s)(.*?)(\s*\*\/)?$/.exec(line) : undefined;
    if (block && !block[3]) {
      const prefix = block[1];
      for (const l of wrap(block[2], MAX_LINE - width(prefix))) out.push(`${prefix}${l}`);
      continue;
    }
    const oneLineDoc = /^(\s*)\/\*\*\s(.*)\s\*\/$/.exec(line);
    if (oneLineDoc && comments.has(lineStart(i) + oneLineDoc[1].length)) {
      const indent = oneLineDoc[1];
      out.push(`${indent}/**`);
      for (const l of wrap(oneLineDoc[2], MAX_LINE - indent.length - 3)) out.push(`${indent} * ${l}`);
      out.push(`${indent} */`);
      continue;
    }
    // A trailing `//` comment running to the end of the line: moved above the code, at the code's indent.
    const trailing = [...comments.values()].find(
      (c) =>
        c.kind === ts.SyntaxKind.SingleLineCommentTrivia &&
        c.pos > lineStart(i) &&
        sf.getLineAndCharacterOfPosition(c.pos).line === i &&
        source.slice(lineStart(i), c.pos).trim() !== '' &&
        !DIRECTIVE.test(source.slice(c.pos + 2, c.end)),
    );
    if (trailing) {
      const code = source.slice(lineStart(i), trailing.pos).trimEnd();
      const indent = /^\s*/.exec(code)[0];
      const text = source.slice(trailing.pos + 2, trailing.end).trim();
      for (const l of wrap(text, MAX_LINE - indent.length - 3)) out.push(`${indent}// ${l}`);
      out.push(code);
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

function reflowLua(source) {
  const lines = source.split('\n');
  if (!lines.some((l) => width(l) > MAX_LINE)) return source;
  const out = [];
  for (const line of lines) {
    const m = /^(\s*)(-{2,}) (.*)$/.exec(line);
    if (width(line) <= MAX_LINE || !m || m[3].startsWith('[[')) {
      out.push(line);
      continue;
    }
    for (const l of wrap(m[3], MAX_LINE - m[1].length - m[2].length - 1)) out.push(`${m[1]}${m[2]} ${l}`);
  }
  return out.join('\n');
}

export function reflowComments(file, source) {
  return file.endsWith('.lua') ? reflowLua(source) : reflowScript(file, source);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of codeFiles()) {
    const source = readFileSync(file, 'utf8');
    const out = reflowComments(file, source);
    if (out !== source) writeFileSync(file, out);
  }
}
