/**
 * Loads lua/*.lua and assembles them. Each file is one script: a header
 * (KEYS / ARGV / Reply, checked against src/engine/scriptCatalogue.ts by
 * test/unit/script-catalogue.test.ts), `--- @include "includes/x"` lines, a body.
 * The number of keys is in the file name (`reserve-7.lua` takes 7 keys).
 *
 * Two assemblies of the same files:
 * - the Functions library (what the service runs, src/engine/functionLibrary.ts):
 *   every include once at the library's top level, each script's body wrapped
 *   as a registered function;
 * - a standalone EVAL script per file (includes inlined), kept for the
 *   EVALSHA-vs-FCALL measurement and tests that read a script's full text.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LuaScript {
  name: string;
  numberOfKeys: number;
  /** The file as written (header, include lines, body). */
  file: string;
  /** The includes it needs, dependencies first, each once. */
  includes: string[];
  /** Standalone EVAL form: includes inlined, then the body. */
  source: string;
  sha1: string;
}

const INCLUDE = /^--- @include "([^"]+)"\s*$/gm;

/** The repository's lua/ folder, found from this file both in src/ and in dist/src/. */
export function findLuaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'lua');
    if (existsSync(join(candidate, 'includes'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lua/ folder not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const includeNames = (text: string): string[] => [...text.matchAll(INCLUDE)].map((m) => m[1]!);
export const withoutIncludeLines = (text: string): string => text.replace(INCLUDE, '');

/** Includes in dependency order (an include's own includes come before it), each once. */
export function resolveIncludes(readInclude: (name: string) => string, names: string[], out: string[] = []): string[] {
  for (const name of names) {
    if (out.includes(name)) continue;
    resolveIncludes(readInclude, includeNames(readInclude(name)), out);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

export function createIncludeReader(luaDir: string): (name: string) => string {
  const cache = new Map<string, string>();
  return (name) => {
    let text = cache.get(name);
    if (text === undefined) {
      text = readFileSync(join(luaDir, `${name}.lua`), 'utf8');
      cache.set(name, text);
    }
    return text;
  };
}

export function loadLuaScripts(luaDir = findLuaDir()): Map<string, LuaScript> {
  const readInclude = createIncludeReader(luaDir);
  const scripts = new Map<string, LuaScript>();
  for (const fileName of readdirSync(luaDir)
    .filter((f) => f.endsWith('.lua'))
    .sort()) {
    const match = /^(.+)-(\d+)\.lua$/.exec(fileName);
    if (!match) throw new Error(`lua/${fileName}: a script file is named <name>-<number of keys>.lua`);
    const name = match[1]!;
    const file = readFileSync(join(luaDir, fileName), 'utf8');
    const includes = resolveIncludes(readInclude, includeNames(file));
    const source = [...includes.map((i) => withoutIncludeLines(readInclude(i))), withoutIncludeLines(file)].join('\n');
    scripts.set(name, {
      name,
      numberOfKeys: Number(match[2]),
      file,
      includes,
      source,
      sha1: createHash('sha1').update(source).digest('hex'),
    });
  }
  return scripts;
}
