/**
 * The Dockerfile's stages carried out without Docker (there is none here), so
 * a test checks what the image does instead of how the Dockerfile reads:
 * each stage gets a folder standing for its WORKDIR; COPY copies from the
 * build context (what .dockerignore leaves in it) or from an earlier stage;
 * RUN runs the command there with the stage's ENV; `npm ci` links the
 * repository's installed packages instead of downloading them (all of them,
 * or with --omit=dev only the production ones). What each stage declares
 * (ENV, USER, HEALTHCHECK, CMD) is handed back with its folder, to be run.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export interface Stage {
  name: string;
  /** The folder standing for its WORKDIR. */
  dir: string;
  env: Record<string, string>;
  user: string | undefined;
  healthcheck: string[] | undefined;
  cmd: string[];
}

export interface Image {
  stages: Map<string, Stage>;
  /** What `docker build` without --target gives. */
  last: Stage;
  remove(): void;
}

interface Instruction {
  op: string;
  args: string;
}

/** Instructions, continuation lines joined, comments dropped. */
function instructions(dockerfile: string): Instruction[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const space = l.search(/\s/);
      return { op: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() };
    });
}

/** `.dockerignore` as a test of a context-relative path (names, folders and `*` globs, as this repository uses it). */
function ignoredBy(context: string): (path: string) => boolean {
  const file = join(context, '.dockerignore');
  const patterns = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  const regexes = patterns.map(
    (p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`),
  );
  return (path) => regexes.some((r) => r.test(path));
}

/** KEY=value pairs of an ENV instruction (values without spaces, as this Dockerfile writes them). */
const envPairs = (args: string) => Object.fromEntries([...args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));

/** The production packages' folders directly under node_modules (`npm ls --omit=dev`). */
function productionPackages(context: string): string[] {
  const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: context,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const top = new Set<string>();
  for (const path of out.split('\n')) {
    const rel = relative(join(context, 'node_modules'), path.trim());
    if (!path.trim() || rel.startsWith('..') || rel === '') continue;
    const parts = rel.split('/');
    top.add(parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!);
  }
  return [...top];
}

/** Runs the stages of `<context>/Dockerfile`; the ARGs take their defaults. */
export function buildImageWithoutDocker(context: string): Image {
  const root = mkdtempSync(join(tmpdir(), 'qa-image-'));
  chmodSync(root, 0o755); // readable by the image's unprivileged user
  const ignored = ignoredBy(context);
  const args: Record<string, string> = {};
  const stages = new Map<string, Stage>();
  let stage: Stage | undefined;
  const expand = (s: string) => s.replace(/\$\{?(\w+)\}?/g, (_, n: string) => args[n] ?? stage?.env[n] ?? '');

  for (const { op, args: rest } of instructions(readFileSync(join(context, 'Dockerfile'), 'utf8'))) {
    switch (op) {
      case 'ARG': {
        const [name, value = ''] = rest.split('=');
        args[name!] = value;
        break;
      }
      case 'FROM': {
        const name = /\bAS\s+(\S+)/i.exec(rest)?.[1] ?? String(stages.size);
        stage = {
          name,
          dir: join(root, name),
          env: { PATH: process.env.PATH ?? '' },
          user: undefined,
          healthcheck: undefined,
          cmd: [],
        };
        mkdirSync(stage.dir, { recursive: true });
        stages.set(name, stage);
        break;
      }
      case 'ENV':
        Object.assign(stage!.env, envPairs(expand(rest)));
        break;
      case 'WORKDIR':
        // One folder per stage stands for its WORKDIR (this Dockerfile sets one, /app).
        break;
      case 'COPY': {
        const from = /^--from=(\S+)\s+/.exec(rest);
        const [sources, target] = ((parts) => [parts.slice(0, -1), parts.at(-1)!])(
          (from ? rest.slice(from[0].length) : rest).split(/\s+/),
        );
        for (const source of sources) {
          const origin = from
            ? join(stages.get(from[1]!)!.dir, source.replace(/^\/app\/?/, ''))
            : join(context, source);
          if (!from && ignored(source))
            throw new Error(`COPY ${source}: excluded from the build context by .dockerignore`);
          if (!existsSync(origin)) throw new Error(`COPY ${source}: not found (${origin})`);
          const into = target.endsWith('/')
            ? join(stage!.dir, target, source.split('/').at(-1)!)
            : join(stage!.dir, target);
          mkdirSync(dirname(into), { recursive: true });
          cpSync(origin, into, { recursive: true, filter: (p) => from !== null || !ignored(relative(context, p)) });
        }
        break;
      }
      case 'RUN': {
        const { dir, env } = stage!;
        const command = expand(rest);
        if (/^npm ci\b/.test(command)) {
          if (/--omit=dev\b/.test(command)) {
            for (const name of productionPackages(context)) {
              mkdirSync(dirname(join(dir, 'node_modules', name)), { recursive: true });
              symlinkSync(join(context, 'node_modules', name), join(dir, 'node_modules', name));
            }
          } else symlinkSync(join(context, 'node_modules'), join(dir, 'node_modules'));
          break;
        }
        execFileSync('sh', ['-c', command], { cwd: dir, env, stdio: 'pipe', timeout: 300_000 });
        break;
      }
      case 'USER':
        stage!.user = rest;
        break;
      case 'HEALTHCHECK':
        stage!.healthcheck = JSON.parse(/\bCMD\s+(\[.*\])\s*$/.exec(rest)![1]!) as string[];
        break;
      case 'CMD':
        stage!.cmd = JSON.parse(rest) as string[];
        break;
      default:
      // EXPOSE and the like change nothing a process sees.
    }
  }
  return { stages, last: stage!, remove: () => rmSync(root, { recursive: true, force: true }) };
}
