// Splits string and template literals that sit on a line over MAX_LINE characters into concatenations of
// pieces cut after a space ('a b' -> ('a ' + 'b')), so that Prettier can wrap the line. The value stays
// byte-identical: only whole literal text is regrouped, never inside an escape or a ${...} substitution.
// Skipped: literals spanning lines, tagged templates, and places where only a literal is valid (module
// names, types, property names, JSX attributes, `as const`). Usage: node splitLiterals.mjs [file...]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MAX_LINE, codeFiles } from './files.mjs';

const ts = createRequire(import.meta.url)('typescript');
const MIN_LITERAL = 40;
const MIN_PIECE = 20;

/**
 * Packs units (text between the places a cut is allowed) into pieces: about `width` characters each, or halves
 * when the whole fits in `width` (the line is long because of what surrounds the literal). A unit longer than a
 * piece stays whole.
 */
function pack(units, width) {
  const total = units.reduce((sum, u) => sum + u.length, 0);
  const target = Math.min(width, Math.ceil(total / Math.max(2, Math.ceil(total / width))) + 8);
  const pieces = [];
  let current = '';
  for (const unit of units) {
    if (current.length >= MIN_PIECE && current.length + unit.length > target) {
      pieces.push(current);
      current = '';
    }
    current += unit;
  }
  if (current.length < MIN_PIECE && pieces.length > 0) pieces.push(pieces.pop() + current);
  else pieces.push(current);
  return pieces;
}

/** Raw literal text cut after each space and after each `\n` escape (which end their unit). */
function unitsOf(text) {
  return text.split(/(?<= )|(?<=(?<!\\)(?:\\\\)*\\n)/);
}

/** Whether a string literal here may be replaced by an expression. */
function expressionAllowed(node) {
  const parent = node.parent;
  if (ts.isImportDeclaration(parent) || ts.isExportDeclaration(parent) || ts.isExternalModuleReference(parent)) {
    return false;
  }
  if (ts.isImportTypeNode?.(parent) || ts.isLiteralTypeNode(parent) || ts.isModuleDeclaration(parent)) return false;
  if (ts.isJsxAttribute(parent) || ts.isEnumMember(parent)) return false;
  if (ts.isAsExpression(parent) || ts.isSatisfiesExpression?.(parent)) return false;
  if (
    (ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent) || ts.isMethodDeclaration(parent)) &&
    parent.name === node
  ) {
    return false;
  }
  if (ts.isExpressionStatement(parent)) return false; // a directive ('use strict')
  return !ts.isTaggedTemplateExpression(parent);
}

function indentOf(line) {
  return /^\s*/.exec(line)[0].length;
}

/** The replacement text for a literal as its pieces, or undefined to leave it. */
function split(node, sf, width) {
  const raw = node.getText(sf);
  let pieces;
  let quote = '`';
  if (ts.isStringLiteral(node)) {
    quote = raw[0];
    pieces = pack(unitsOf(raw.slice(1, -1)), width);
  } else if (ts.isNoSubstitutionTemplateLiteral(node)) {
    pieces = pack(unitsOf(raw.slice(1, -1)), width);
  } else {
    // A template with substitutions: its literal text may be cut at spaces; each ${...} stays whole, as written.
    const text = sf.text;
    const units = [];
    const addLiteral = (literal) => {
      const [first, ...rest] = unitsOf(literal);
      if (units.length > 0 && !units.at(-1).endsWith(' ')) units[units.length - 1] += first;
      else units.push(first);
      units.push(...rest);
    };
    addLiteral(text.slice(node.head.getStart(sf) + 1, node.head.getEnd() - 2));
    let expressionStart = node.head.getEnd();
    for (const span of node.templateSpans) {
      const literalStart = span.literal.getStart(sf);
      const substitution = '${' + text.slice(expressionStart, literalStart) + '}';
      if (units.length > 0 && !units.at(-1).endsWith(' ')) units[units.length - 1] += substitution;
      else units.push(substitution);
      const tail = ts.isTemplateTail(span.literal);
      addLiteral(text.slice(literalStart + 1, span.literal.getEnd() - (tail ? 1 : 2)));
      expressionStart = span.literal.getEnd();
    }
    pieces = pack(
      units.filter((u) => u !== ''),
      width,
    );
  }
  if (pieces.join('') !== raw.slice(1, -1)) throw new Error(`${sf.fileName}: a split changed the literal ${raw}`);
  return pieces.length > 1 ? pieces.map((p) => quote + p + quote) : undefined;
}

export function splitLiterals(file, source) {
  const lines = source.split('\n');
  const isLong = (line) => [...lines[line]].length > MAX_LINE;
  if (!lines.some((_, i) => isLong(i))) return source;
  const kind = file.endsWith('x') ? ts.ScriptKind.TSX : file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, kind);
  const edits = [];
  const visit = (node) => {
    const literal =
      ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node);
    if (literal) {
      const start = node.getStart(sf);
      const line = sf.getLineAndCharacterOfPosition(start).line;
      const oneLine = line === sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      if (oneLine && isLong(line) && node.getWidth(sf) >= MIN_LITERAL && expressionAllowed(node)) {
        const width = Math.max(MIN_LITERAL, MAX_LINE - indentOf(lines[line]) - 8);
        const pieces = split(node, sf, width);
        if (pieces) edits.push({ start, end: node.getEnd(), text: '(' + pieces.join(' +\n') + ')' });
      }
      return; // nothing inside a literal on one line is split again
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  let out = source;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of codeFiles().filter((f) => !f.endsWith('.lua'))) {
    const source = readFileSync(file, 'utf8');
    const out = splitLiterals(file, source);
    if (out !== source) writeFileSync(file, out);
  }
}
