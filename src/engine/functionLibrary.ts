/**
 * The scripts as one Redis 7 Functions library. Functions are replicated and
 * persisted with the data, so a promoted replica or a restarted node with
 * its AOF can run them at once (a script cached by SCRIPT LOAD is not).
 *
 * The library is named after its content (`quota_<first 10 hex of sha1>`), and
 * so are its functions (`quota_<hash>_<script>`, function names are global
 * in Redis), so during a rolling deploy two versions sit side by side, each
 * instance calling its own. Old versions stay until an operator deletes them
 * (README "Lua scripts": FUNCTION DELETE).
 *
 * Everything here talks to Redis through `call` only, so it works with an
 * ioredis Redis, a Cluster (FCALL is routed by its first key), or a single
 * node of a cluster (`loadFunctions(node)` for every master).
 */
import { createHash } from 'node:crypto';
import { createIncludeReader, findLuaDir, loadLuaScripts, withoutIncludeLines, type LuaScript } from './luaScripts.js';

/** Anything with ioredis's generic `call`: Redis, Cluster, a cluster node. */
export interface RedisCaller {
  call(command: string, ...args: (string | number | Buffer)[]): Promise<unknown>;
  /** A Cluster's nodes: functions live per node, so they are loaded on every master. */
  nodes?: (role: 'master') => RedisCaller[];
}

/** The nodes a library must be on: every master of a Cluster, else the client itself. */
const targetsOf = (client: RedisCaller): RedisCaller[] =>
  typeof client.nodes === 'function' ? client.nodes('master') : [client];

export interface FunctionLibrary {
  name: string;
  source: string;
  scripts: Map<string, LuaScript>;
  functionName(script: string): string;
}

const NAME_PLACEHOLDER = '__LIBRARY__';

export function buildFunctionLibrary(luaDir = findLuaDir()): FunctionLibrary {
  const scripts = loadLuaScripts(luaDir);
  const readInclude = createIncludeReader(luaDir);
  const includes: string[] = [];
  for (const s of scripts.values()) for (const i of s.includes) if (!includes.includes(i)) includes.push(i);
  // Each script's includes come in its own dependency order; merging keeps every dependency first
  // because each include list already starts with its dependencies.
  const parts = includes.map((i) => `-- ${i}.lua\n${withoutIncludeLines(readInclude(i))}`);
  for (const s of scripts.values()) {
    const fn = `${NAME_PLACEHOLDER}_${luaIdentifier(s.name)}`;
    parts.push(
      `-- ${s.name}-${s.numberOfKeys}.lua\nlocal function ` +
        `${luaIdentifier(s.name)}(KEYS, ARGV)\n${withoutIncludeLines(s.file)}\nend\n` +
        `redis.register_function('${fn}', ${luaIdentifier(s.name)})`,
    );
  }
  const template = parts.join('\n');
  const name = `quota_${createHash('sha1').update(template).digest('hex').slice(0, 10)}`;
  return {
    name,
    source: `#!lua name=${name}\n${template.replaceAll(NAME_PLACEHOLDER, name)}`,
    scripts,
    functionName: (script) => `${name}_${luaIdentifier(script)}`,
  };
}

function luaIdentifier(scriptName: string): string {
  return scriptName.replace(/-/g, '_');
}

/**
 * FUNCTION LOAD without REPLACE, on the client (or every master of a
 * Cluster): a library of that name already holds exactly this code, so
 * "already exists" is success.
 */
export async function loadFunctions(client: RedisCaller, library: FunctionLibrary): Promise<void> {
  await Promise.all(
    targetsOf(client).map(async (node) => {
      try {
        await node.call('FUNCTION', 'LOAD', library.source);
      } catch (err) {
        if (!/already exists/i.test((err as Error).message)) throw err;
      }
    }),
  );
}

/** Whether the library is on the client (on every master of a Cluster). */
export async function functionsLoaded(client: RedisCaller, library: FunctionLibrary): Promise<boolean> {
  const present = await Promise.all(
    targetsOf(client).map(async (node) => {
      const listed = (await node.call('FUNCTION', 'LIST', 'LIBRARYNAME', library.name)) as unknown[][];
      return listed.some((entry) => entry[1] === library.name);
    }),
  );
  return present.length > 0 && present.every(Boolean);
}

export const isFunctionNotFound = (err: unknown) => /function not found/i.test((err as Error)?.message ?? '');
