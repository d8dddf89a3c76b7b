/**
 * Loads lua/*.lua: resolves `--- @include "includes/x"` lines (each include
 * once per script) and reads the number of keys from the file name
 * (`reserve-5.lua` takes 5 keys; a name without a number takes a variable
 * count, passed first at call time).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LuaScript {
  name: string;
  numberOfKeys: number | undefined;
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

function resolveIncludes(luaDir: string, source: string, seen: Set<string>): string {
  return source.replace(INCLUDE, (_line, name: string) => {
    if (seen.has(name)) return '';
    seen.add(name);
    const included = readFileSync(join(luaDir, `${name}.lua`), 'utf8');
    return resolveIncludes(luaDir, included, seen);
  });
}

export function loadLuaScripts(luaDir = findLuaDir()): Map<string, LuaScript> {
  const scripts = new Map<string, LuaScript>();
  for (const file of readdirSync(luaDir).filter((f) => f.endsWith('.lua')).sort()) {
    const match = /^(.+?)(?:-(\d+))?\.lua$/.exec(file);
    if (!match) continue;
    const name = match[1]!;
    const source = resolveIncludes(luaDir, readFileSync(join(luaDir, file), 'utf8'), new Set());
    scripts.set(name, {
      name,
      numberOfKeys: match[2] === undefined ? undefined : Number(match[2]),
      source,
      sha1: createHash('sha1').update(source).digest('hex'),
    });
  }
  return scripts;
}
