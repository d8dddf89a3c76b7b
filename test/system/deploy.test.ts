/**
 * The deployment files (Dockerfile, docker-compose.yml, deploy/prometheus,
 * deploy/grafana) checked without Docker: the Dockerfile's stages carried
 * out and the images' commands run (as their user, with production
 * dependencies only), the exact healthcheck commands run against the real
 * service and test ledger, the
 * compose environment parsed by the service's own config code, and, the key
 * check, every metric any dashboard panel or alert rule refers to exists in a
 * real /metrics scrape of the service after a short scripted flow.
 *
 * When `promtool` is on the PATH (Debian: apt-get install prometheus), the
 * Prometheus config and rules are also checked by it, the alerts are
 * unit-tested with `promtool test rules`, every dashboard query is parsed by
 * it, and the scrape is parsed by `promtool check metrics`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseConfig } from '../../src/config.js';
import { createLedgerServer } from '../../testLedger/ledgerServer.js';
import { parseLedgerEnv } from '../../testLedger/main.js';
import { freePort } from '../../src/redis/redisServer.js';
import { uniqueId } from '../support/engineContext.js';
import { apiClient, apiKeysEnv, request } from '../support/http.js';
import { buildImageWithoutDocker, type Image } from '../support/imageWithoutDocker.js';
import { killService, notable, spawnService, waitExit, type SpawnOptions } from '../support/serviceProcess.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { waitFor } from '../support/wait.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const lastExactComparison = (product: string) =>
  `quota_audit_last_exact_comparison_timestamp_seconds{product="${product}",job="quota-worker",instance="worker:3000"}`;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const readYaml = (path: string): any => parseYaml(read(path), { merge: true });

/** What docker compose says when a `${VAR:?message}` is unset or empty: it refuses to start. */
class RequiredVariableError extends Error {}

/**
 * docker compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
 * `${VAR?message}` and `$$`, as with an empty environment plus `env`.
 */
function interpolate<T>(value: T, env: Record<string, string> = {}): T {
  if (typeof value === 'string') {
    return value.replace(
      /\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g,
      (all, name: string | undefined, op: string | undefined, fallback: string | undefined) => {
        if (all === '$$') return '$';
        const set = env[name!];
        if (op === ':-') return set ? set : (fallback ?? '');
        if (op === '-') return set ?? fallback ?? '';
        if (op === ':?' && !set) throw new RequiredVariableError(`${name}: ${fallback}`);
        if (op === '?' && set === undefined) throw new RequiredVariableError(`${name}: ${fallback}`);
        return set ?? '';
      },
    ) as T;
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)])) as T;
  }
  return value;
}

/** A service's `environment` (map or list form) as a map of strings. */
function envOf(service: any): Record<string, string> {
  const e = service.environment ?? {};
  if (Array.isArray(e))
    return Object.fromEntries(e.map((line: string) => [line.split('=')[0], line.slice(line.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
}

/** The argv of a healthcheck `test` (CMD form, or CMD-SHELL as sh -c). */
function healthcheckArgv(test: unknown): string[] {
  if (typeof test === 'string') return ['sh', '-c', test];
  const [kind, ...rest] = test as string[];
  if (kind === 'CMD') return rest;
  if (kind === 'CMD-SHELL') return ['sh', '-c', rest.join(' ')];
  throw new Error(`unexpected healthcheck test ${JSON.stringify(test)}`);
}

/**
 * Runs a healthcheck command the way Docker would (exit code 0 = healthy).
 * Asynchronous: the service under test runs in this process and must answer.
 */
function runHealthcheck(argv: string[], env: Record<string, string> = {}): Promise<number> {
  const [cmd, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd === 'node' ? process.execPath : cmd!, args, {
      env: { ...process.env, ...env },
      stdio: 'ignore',
      timeout: 10_000,
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? -1));
  });
}

// ---- PromQL: the metric names an expression refers to ---------------------------------------

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'inf',
  'nan',
  'le',
  'start',
  'end',
]);

/**
 * Metric names in a PromQL expression (Grafana variables allowed): strings,
 * label matchers `{…}`, ranges `[…]` and `by (…)`-style label lists are
 * removed; what remains and is an identifier not followed by `(` (a function
 * call) nor a PromQL keyword is a metric name.
 */
function metricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!PROMQL_WORDS.has(m[1]!.toLowerCase())) names.add(m[1]!);
  }
  return [...names].sort();
}

/** Families (`# TYPE name type`) and the names of the samples in a Prometheus text scrape. */
function parseScrape(text: string) {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    const sample = /^([A-Za-z_:][\w:]*)(?:\{.*\})?\s+(\S+)/.exec(line);
    if (sample && !line.startsWith('#')) samples.set(sample[1]!, (samples.get(sample[1]!) ?? 0) + 1);
  }
  return { types, samples };
}

/** The family a sample name belongs to (`x_bucket` -> `x` for a histogram), if it is in the scrape. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const m = /^(.+)_(bucket|count|sum)$/.exec(name);
  if (
    m &&
    ['histogram', 'summary'].includes(types.get(m[1]!) ?? '') &&
    (m[2] !== 'bucket' || types.get(m[1]!) === 'histogram')
  )
    return m[1];
  return undefined;
}

// ---- the files --------------------------------------------------------------------------------

/** The variables the compose file requires (`${VAR:?…}`), as an operator would set them. */
const REQUIRED_ENV = {
  QUOTA_API_KEYS: 'admin:ops:compose-admin-key-0001,client:android-app:compose-client-key-0001',
  SETTLEMENT_SECRET: 'compose-settlement-secret-0001',
  GRAFANA_ADMIN_PASSWORD: 'compose-grafana-password',
};
const compose = interpolate(readYaml('docker-compose.yml'), REQUIRED_ENV);
const services: Record<string, any> = compose.services;
const prometheus = readYaml('deploy/prometheus/prometheus.yml');
const alertsFile = readYaml('deploy/prometheus/alerts.yml');
const alertRules: any[] = alertsFile.groups.flatMap((g: any) => g.rules).filter((r: any) => r.alert);
const datasources = readYaml('deploy/grafana/provisioning/datasources/datasource.yml');
const dashboardProviders = readYaml('deploy/grafana/provisioning/dashboards/dashboards.yml');
const dashboard = JSON.parse(read('deploy/grafana/dashboards/quota-allocator.json'));
const panels: any[] = dashboard.panels.flatMap((p: any) => (p.type === 'row' ? [p, ...(p.panels ?? [])] : [p]));
const dataPanels = panels.filter((p) => p.type !== 'row');
const dashboardExprs: string[] = dataPanels.flatMap((p) => p.targets.map((t: any) => t.expr as string));
const alertExprs: string[] = alertRules.map((r) => r.expr as string);

const PROMTOOL = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0 ? 'promtool' : undefined;
const promtool = (args: string[], input?: string) =>
  spawnSync(PROMTOOL!, args, { cwd: ROOT, encoding: 'utf8', input, timeout: 60_000 });

describe('metricNames (PromQL)', () => {
  it('finds metric names and nothing else', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le) ' +
          '(rate(quota_http_request_duration_seconds_bucket{route="/v1/x",method="POST"}[1m])))',
      ),
    ).toEqual(['quota_http_request_duration_seconds_bucket']);
    expect(
      metricNames(
        'max by (product) (quota_pool_available) / max by (product) ' +
          '(quota_pool_capacity) < 0.05 and max by (product) (quota_pool_capacity) > 0',
      ),
    ).toEqual(['quota_pool_available', 'quota_pool_capacity']);
    expect(metricNames('sum(max by (product) (quota_audit_violations)) or vector(0)')).toEqual([
      'quota_audit_violations',
    ]);
    expect(metricNames('up{job="quota-api"} == 0')).toEqual(['up']);
    expect(
      metricNames('rate(x_total{a=~"$product"}[$__rate_interval] offset 5m) * on (instance) group_left (v) y_info'),
    ).toEqual(['x_total', 'y_info']);
    expect(metricNames('sum(rate(a_total[5m])) / sum(rate(a_total[5m])) > 1e-2')).toEqual(['a_total']);
  });
});

describe(
  'the images, built and run without Docker ' + '(test/support/imageWithoutDocker.ts carries out the Dockerfile)',
  () => {
    let image: Image;
    beforeAll(() => {
      image = buildImageWithoutDocker(ROOT);
    }, 300_000);
    afterAll(() => image?.remove());

    /** The node images' `node` user is uid 1000; switching needs root (else the test runs as itself). */
    const asUser = (user: string | undefined): SpawnOptions => {
      expect(['root', '0', '0:0', undefined], 'the image runs as an unprivileged USER').not.toContain(user);
      return process.getuid?.() === 0 && user === 'node' ? { uid: 1000, gid: 1000 } : {};
    };
    const entryOf = (cmd: string[]) => {
      expect(cmd[0], 'the exec-form CMD runs node').toBe('node');
      return cmd[1]!;
    };

    it(
      'the service image (what `docker build` gives), as its user with production dependencies ' +
        'only: HEALTHCHECK 0, decides (Lua found), serves the console, SIGTERM exits 0',
      async () => {
        const runtime = image.last;
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        const env = {
          ...runtime.env,
          PORT: String(port),
          REDIS_URL: inject('redisUrl'),
          KEY_PREFIX: uniqueId('image'),
          QUOTA_API_KEYS: apiKeysEnv({ admin: 'image-admin-key-0001', client: 'image-client-key-0001' }),
        };
        const svc = spawnService(entryOf(runtime.cmd), env, 'the service image', {
          cwd: runtime.dir,
          ...asUser(runtime.user),
        });
        try {
          expect(runtime.healthcheck, 'the image has a HEALTHCHECK').toBeDefined();
          await waitFor(
            'the HEALTHCHECK to answer 0',
            async () => (await runHealthcheck(runtime.healthcheck!, env)) === 0,
            {
              timeoutMs: 30_000,
              explain: () => notable(svc),
            },
          );
          const api = apiClient(base, { admin: 'image-admin-key-0001', client: 'image-client-key-0001' });
          expect((await api.admin('PUT', '/v1/products/p1', { capacity: 1_000 })).status).toBe(201);
          expect((await api.admin('PUT', '/v1/products/p1/customers/c1', { limit: 500 })).status).toBe(201);
          const hold = await api.client(
            'POST',
            '/v1/products/p1/reservations',
            { customerId: 'c1', amount: 100 },
            { 'Idempotency-Key': 'k1' },
          );
          expect(hold.status, hold.text).toBe(201);
          const page = await request(base, 'GET', '/console/');
          expect(page.status).toBe(200);
          expect(page.headers.get('content-type')).toMatch(/^text\/html/);
          svc.child.kill('SIGTERM');
          expect((await waitExit(svc, 15_000)).code, 'exit code after SIGTERM').toBe(0);
          expect(await runHealthcheck(runtime.healthcheck!, env), 'HEALTHCHECK with nothing listening').toBe(1);
          expect(existsSync(join(runtime.dir, 'dist', 'testLedger')), 'the service image ships the test ledger').toBe(
            false,
          );
        } finally {
          await killService(svc);
        }
      },
    );

    it(
      "the test-ledger stage (compose's ledger) starts from its CMD with " +
        "the compose environment; compose's healthcheck answers 0",
      async () => {
        const stage = image.stages.get(services.ledger.build.target)!;
        expect(stage, `the stage compose targets (${services.ledger.build.target})`).toBeDefined();
        const port = await freePort();
        const env = { ...stage.env, ...envOf(services.ledger), LEDGER_PORT: String(port), LEDGER_HOST: '127.0.0.1' };
        const ledger = spawnService(entryOf(stage.cmd), env, 'the test-ledger image', {
          cwd: stage.dir,
          ...asUser(stage.user),
        });
        try {
          const check = healthcheckArgv(services.ledger.healthcheck.test).map((a) => a.replace(':4000/', `:${port}/`));
          await waitFor("compose's ledger healthcheck to answer 0", async () => (await runHealthcheck(check)) === 0, {
            timeoutMs: 30_000,
            explain: () => notable(ledger),
          });
        } finally {
          await killService(ledger);
        }
      },
    );
  },
);

describe('docker-compose.yml', () => {
  it('has the whole stack', () => {
    expect(Object.keys(services).sort()).toEqual(['api', 'grafana', 'ledger', 'prometheus', 'redis', 'worker']);
  });

  it('redis: 7.0, AOF with appendfsync always by default, noeviction, a named volume, a healthcheck', () => {
    const redis = services.redis;
    expect(redis.image).toBe('redis:7.0');
    const cmd: string[] = redis.command.map(String);
    const flag = (name: string) => cmd[cmd.indexOf(`--${name}`) + 1];
    expect(cmd[0]).toBe('redis-server');
    expect(flag('appendonly')).toBe('yes');
    expect(flag('appendfsync')).toBe('always');
    expect(flag('maxmemory-policy')).toBe('noeviction');
    // The trade-off switch: REDIS_APPENDFSYNC=everysec.
    const everysec = interpolate(readYaml('docker-compose.yml'), {
      ...REQUIRED_ENV,
      REDIS_APPENDFSYNC: 'everysec',
    }).services.redis.command.map(String);
    expect(everysec[everysec.indexOf('--appendfsync') + 1]).toBe('everysec');
    expect(redis.volumes).toContain('redis-data:/data');
    expect(Object.keys(compose.volumes)).toContain('redis-data');
    expect(healthcheckArgv(redis.healthcheck.test)).toEqual(['redis-cli', 'ping']);
  });

  it("api and worker run the Dockerfile's image, with their roles; the ledger its test-ledger stage", () => {
    for (const name of ['api', 'worker', 'ledger']) {
      expect(services[name].build?.context ?? services[name].build, name).toBe('.');
    }
    for (const name of ['api', 'worker']) {
      expect(services[name].build?.target, name).toBeUndefined();
      expect(services[name].image, name).toBe('quota-allocator:local');
    }
    expect(services.ledger.build.target).toBe('test-ledger');
    expect(services.ledger.image).toBe('quota-allocator-test-ledger:local');
    expect(envOf(services.api).ROLE).toBe('api');
    expect(envOf(services.worker).ROLE).toBe('worker');
    expect(services.api.command).toBeUndefined(); // the image's CMD: node dist/src/main.js
    expect(services.worker.command).toBeUndefined();
    expect(services.ledger.command).toEqual(['node', 'dist/testLedger/main.js']);
    // Docker's stop grace period outlasts the service's own graceful-stop limit.
    for (const name of ['api', 'worker']) {
      const grace = /^(\d+)s$/.exec(String(services[name].stop_grace_period ?? '10s'));
      expect(Number(grace?.[1]) * 1000, name).toBeGreaterThan(parseConfig(envOf(services[name])).shutdownTimeoutMs);
    }
    expect(services.api.ports).toContain('3000:3000');
    expect(services.ledger.ports).toEqual(['127.0.0.1:4000:4000']);
    expect(services.prometheus.ports).toEqual(['127.0.0.1:9090:9090']);
    expect(services.grafana.ports).toContain('3001:3000');
  });

  it("the api's and the worker's environment is a valid production config of the service", () => {
    for (const name of ['api', 'worker']) {
      const env = envOf(services[name]);
      const config = parseConfig(env);
      expect(config.nodeEnv, name).toBe('production');
      expect(config.usingDevelopmentKeys, name).toBe(false);
      expect(config.redisUrl, name).toBe('redis://redis:6379');
      expect(config.settlementUrl, name).toBe('http://ledger:4000');
      expect(config.apiKeys.map((k: { role: string }) => k.role).sort(), name).toEqual(['admin', 'client']);
    }
    // The worker signs with the secret the ledger verifies.
    expect(envOf(services.worker).SETTLEMENT_SECRET).toBe(envOf(services.ledger).SETTLEMENT_SECRET);
    // A QUOTA_API_KEYS from the environment wins over the default.
    const keys = 'admin:prod-admin-key-1,client:prod-client-key-1';
    expect(
      envOf(interpolate(readYaml('docker-compose.yml'), { ...REQUIRED_ENV, QUOTA_API_KEYS: keys }).services.api)
        .QUOTA_API_KEYS,
    ).toBe(keys);
  });

  it("the ledger's environment is a valid test-ledger config on port 4000", () => {
    const config = parseLedgerEnv(envOf(services.ledger));
    expect(config.options.port).toBe(4000);
  });

  it(
    'healthchecks: every service has one (the worker role serves ' +
      '/healthz too); every depends_on on service_healthy has one',
    () => {
      expect(services.worker.healthcheck?.disable).not.toBe(true);
      for (const name of ['redis', 'api', 'ledger', 'prometheus', 'grafana']) {
        expect(services[name].healthcheck?.test, name).toBeDefined();
      }
      expect(services.api.depends_on.redis.condition).toBe('service_healthy');
      expect(services.worker.depends_on.redis.condition).toBe('service_healthy');
      expect(services.worker.depends_on.ledger.condition).toBe('service_healthy');
      expect(services.grafana.depends_on.prometheus.condition).toBe('service_healthy');
      for (const [name, service] of Object.entries(services)) {
        for (const [dep, spec] of Object.entries<any>(service.depends_on ?? {})) {
          expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
          if (spec.condition === 'service_healthy') {
            expect(services[dep].healthcheck?.test, `${name} waits for ${dep} to be healthy`).toBeDefined();
            expect(services[dep].healthcheck?.disable, `${name} waits for ${dep} to be healthy`).not.toBe(true);
          }
        }
      }
    },
  );

  it('prometheus and grafana mount the deploy/ folders that exist, where their configs expect them', () => {
    const mounts = (name: string) =>
      (services[name].volumes as string[]).map((v) => v.split(':')).filter(([src]) => src!.startsWith('./'));
    const promMount = mounts('prometheus').find(([, target]) => target === '/etc/prometheus');
    expect(promMount?.[0]).toBe('./deploy/prometheus');
    expect(services.prometheus.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    for (const [src] of [...mounts('prometheus'), ...mounts('grafana')])
      expect(existsSync(join(ROOT, src!)), src).toBe(true);
    const grafanaTargets = Object.fromEntries(mounts('grafana').map(([src, target]) => [target, src]));
    expect(grafanaTargets['/etc/grafana/provisioning']).toBe('./deploy/grafana/provisioning');
    const dashboardsPath = dashboardProviders.providers[0].options.path;
    expect(grafanaTargets[dashboardsPath]).toBe('./deploy/grafana/dashboards');
    for (const v of ['redis-data', 'prometheus-data', 'grafana-data'])
      expect(Object.keys(compose.volumes)).toContain(v);
  });
});

describe('docker-compose.yml ships no open doors (issue 10 item 8)', () => {
  it(
    'refuses to start without QUOTA_API_KEYS, SETTLEMENT_SECRET ' + 'or a Grafana admin password: no usable default',
    () => {
      for (const name of Object.keys(REQUIRED_ENV)) {
        const env: Record<string, string> = { ...REQUIRED_ENV };
        delete env[name];
        expect(() => interpolate(readYaml('docker-compose.yml'), env), name).toThrow(new RegExp(name));
        expect(() => interpolate(readYaml('docker-compose.yml'), { ...env, [name]: '' }), `${name} empty`).toThrow(
          RequiredVariableError,
        );
      }
      expect(read('docker-compose.yml')).not.toMatch(/change-me|admin\/admin|:-admin\}|compose-dev-settlement-secret/);
    },
  );

  it("the test ledger's unauthenticated /_control and Prometheus are published on the loopback interface only", () => {
    const published = (name: string) => (services[name].ports ?? []).map(String);
    for (const name of ['ledger', 'prometheus']) {
      for (const port of published(name)) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
    expect(services.redis.ports).toBeUndefined();
  });

  it("Prometheus's lifecycle API is off", () => {
    expect(services.prometheus.command.map(String)).not.toContain('--web.enable-lifecycle');
    expect(services.prometheus.command.join(' ')).not.toMatch(/enable-lifecycle|enable-admin-api/);
  });

  it(
    'Redis has a maxmemory with noeviction, so a full Redis ' + 'refuses writes (503) instead of growing until killed',
    () => {
      const cmd: string[] = services.redis.command.map(String);
      expect(cmd[cmd.indexOf('--maxmemory-policy') + 1]).toBe('noeviction');
      expect(cmd[cmd.indexOf('--maxmemory') + 1]).toMatch(/^\d+(mb|gb)$/);
      const sized = interpolate(readYaml('docker-compose.yml'), {
        ...REQUIRED_ENV,
        REDIS_MAXMEMORY: '2gb',
      }).services.redis.command.map(String);
      expect(sized[sized.indexOf('--maxmemory') + 1]).toBe('2gb');
    },
  );

  it(
    'the secrets can come from files instead (QUOTA_API_KEYS_FILE, ' +
      'SETTLEMENT_SECRET_FILE): the api config accepts them',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'deploy-secrets-'));
      try {
        writeFileSync(join(dir, 'keys'), `${REQUIRED_ENV.QUOTA_API_KEYS.replaceAll(',', '\n')}\n`);
        writeFileSync(join(dir, 'secret'), `${REQUIRED_ENV.SETTLEMENT_SECRET}\n`);
        const env = envOf(services.api);
        delete env.QUOTA_API_KEYS;
        delete env.SETTLEMENT_SECRET;
        const config = parseConfig({
          ...env,
          QUOTA_API_KEYS_FILE: join(dir, 'keys'),
          SETTLEMENT_SECRET_FILE: join(dir, 'secret'),
        });
        expect(config.apiKeys.map((k) => `${k.role}:${k.name}`)).toEqual(['admin:ops', 'client:android-app']);
        expect(config.settlementSecret).toBe(REQUIRED_ENV.SETTLEMENT_SECRET);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('Prometheus config and alert rules', () => {
  it('scrapes the api and the worker every 5 s at their compose service names and ports, and loads alerts.yml', () => {
    expect(prometheus.global.scrape_interval).toBe('5s');
    const job = prometheus.scrape_configs.find((j: any) => j.job_name === 'quota-api');
    expect(job).toBeDefined();
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.scrape_interval ?? prometheus.global.scrape_interval).toBe('5s');
    expect(job.static_configs.flatMap((s: any) => s.targets)).toEqual([`api:${envOf(services.api).PORT}`]);
    const worker = prometheus.scrape_configs.find((j: any) => j.job_name === 'quota-worker');
    expect(worker.static_configs.flatMap((s: any) => s.targets)).toEqual([
      `worker:${envOf(services.worker).PORT ?? 3000}`,
    ]);
    expect(prometheus.rule_files).toEqual(['alerts.yml']);
    // The role label says which process a series came from.
    expect(job.static_configs.every((c: any) => c.labels?.role === 'api')).toBe(true);
    expect(worker.static_configs.every((c: any) => c.labels?.role === 'worker')).toBe(true);
  });

  it('has the alerts, each with a severity and a summary and description', () => {
    expect(alertRules.map((r) => r.alert).sort()).toEqual([
      'QuotaApiDown',
      'QuotaAuditNotComparing',
      'QuotaAuditViolation',
      'QuotaHttp5xxRate',
      'QuotaPoolNearlyExhausted',
      'QuotaRedisDown',
      'QuotaRedisReplicasMissing',
      'QuotaRedisWritesUnconfirmed',
      'QuotaSettlementBacklogStale',
      'QuotaSettlementUnknown',
      'QuotaWebhookBacklogGrowing',
      'QuotaWebhookEventsLost',
      'QuotaWorkerDown',
    ]);
    for (const r of alertRules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
    }
    const byName = Object.fromEntries(alertRules.map((r) => [r.alert, r]));
    expect(byName.QuotaAuditViolation.expr).toMatch(/quota_audit_violations\)? > 0/);
    expect(byName.QuotaSettlementUnknown.expr).toMatch(/quota_settlement_unknown\)? > 0/);
    expect(byName.QuotaAuditNotComparing.expr).toMatch(
      /time\(\) - quota_audit_last_exact_comparison_timestamp_seconds\)? > 600/,
    );
    expect(byName.QuotaAuditNotComparing.for).toBe('5m');
    expect(byName.QuotaSettlementBacklogStale.expr).toMatch(/quota_settlement_oldest_pending_age_seconds\)? > 300/);
    expect(byName.QuotaSettlementBacklogStale.for).toBe('5m');
    expect(byName.QuotaHttp5xxRate.expr).toMatch(/status_class="5xx"/);
    expect(byName.QuotaHttp5xxRate.expr).toMatch(/> 0\.01/);
    expect(byName.QuotaRedisDown.expr).toMatch(/quota_redis_up\)? == 0/);
    expect(byName.QuotaRedisDown.for).toBe('1m');
    expect(byName.QuotaApiDown.expr).toBe('up{job="quota-api"} == 0');
    // The worker: down, or gone from the targets altogether.
    expect(byName.QuotaWorkerDown.expr).toBe('up{job="quota-worker"} == 0 or absent(up{job="quota-worker"})');
    expect(byName.QuotaWorkerDown.labels.severity).toBe('critical');
    expect(byName.QuotaWorkerDown.for).toBe('1m');
    expect(byName.QuotaRedisReplicasMissing.expr).toMatch(
      /quota_redis_replicas_attached\)? < .*quota_redis_wait_replicas/,
    );
    expect(byName.QuotaRedisWritesUnconfirmed.expr).toMatch(/quota_redis_replicas_unconfirmed_writes_total/);
    expect(byName.QuotaPoolNearlyExhausted.expr).toMatch(/quota_pool_available\)? \/ .*quota_pool_capacity\)? < 0\.05/);
    expect(byName.QuotaPoolNearlyExhausted.expr).toMatch(/quota_pool_capacity\)? > 0/);
  });

  describe.runIf(PROMTOOL)('with promtool', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'deploy-test-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('promtool check config / check rules pass', () => {
      const config = promtool(['check', 'config', 'deploy/prometheus/prometheus.yml']);
      expect(config.status, config.stdout + config.stderr).toBe(0);
      const rules = promtool(['check', 'rules', 'deploy/prometheus/alerts.yml']);
      expect(rules.status, rules.stdout + rules.stderr).toBe(0);
    });

    it('promtool test rules: each alert fires on the bad case and stays quiet otherwise', () => {
      // Annotations are checked by `check rules` (templates parse); here the expressions, `for` and labels.
      const bare = {
        groups: alertsFile.groups.map((g: any) => ({
          ...g,
          rules: g.rules.map(({ annotations: _a, ...r }: any) => r),
        })),
      };
      writeFileSync(join(dir, 'alerts.yml'), stringifyYaml(bare));
      const reserve = 'route="/v1/products/:productId/reservations",method="POST"';
      const tests = {
        rule_files: ['alerts.yml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: 'quota_audit_violations{product="p1",job="quota-api",instance="api:3000"}', values: '0 2x15' },
              { series: 'quota_audit_violations{product="p2",job="quota-api",instance="api:3000"}', values: '0x15' },
              { series: 'quota_settlement_unknown{job="quota-api",instance="api:3000"}', values: '0 0 1x15' },
              { series: 'quota_redis_up{job="quota-api",instance="api:3000"}', values: '1 1 0x15' },
              { series: 'up{job="quota-api",instance="api:3000"}', values: '1 0x15' },
              { series: 'quota_pool_capacity{product="p1",job="quota-api",instance="api:3000"}', values: '1000x15' },
              {
                series: 'quota_pool_available{product="p1",job="quota-api",instance="api:3000"}',
                values: '1000 500 40x15',
              },
              { series: 'quota_pool_capacity{product="p2",job="quota-api",instance="api:3000"}', values: '0x15' },
              { series: 'quota_pool_available{product="p2",job="quota-api",instance="api:3000"}', values: '0x15' },
              { series: 'quota_pool_capacity{product="p3",job="quota-api",instance="api:3000"}', values: '1000x15' },
              { series: 'quota_pool_available{product="p3",job="quota-api",instance="api:3000"}', values: '900x15' },
            ],
            alert_rule_test: [
              { eval_time: '0m', alertname: 'QuotaAuditViolation', exp_alerts: [] },
              {
                eval_time: '2m',
                alertname: 'QuotaAuditViolation',
                exp_alerts: [{ exp_labels: { severity: 'critical', product: 'p1' } }],
              },
              { eval_time: '1m', alertname: 'QuotaSettlementUnknown', exp_alerts: [] },
              {
                eval_time: '3m',
                alertname: 'QuotaSettlementUnknown',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
              { eval_time: '2m', alertname: 'QuotaRedisDown', exp_alerts: [] },
              { eval_time: '4m', alertname: 'QuotaRedisDown', exp_alerts: [{ exp_labels: { severity: 'critical' } }] },
              { eval_time: '0m', alertname: 'QuotaApiDown', exp_alerts: [] },
              {
                eval_time: '3m',
                alertname: 'QuotaApiDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'quota-api', instance: 'api:3000' } }],
              },
              { eval_time: '3m', alertname: 'QuotaPoolNearlyExhausted', exp_alerts: [] },
              // No worker series at all in this group: absent() fires after its minute.
              { eval_time: '0m', alertname: 'QuotaWorkerDown', exp_alerts: [] },
              {
                eval_time: '2m',
                alertname: 'QuotaWorkerDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'quota-worker' } }],
              },
              {
                eval_time: '5m',
                alertname: 'QuotaPoolNearlyExhausted',
                exp_alerts: [{ exp_labels: { severity: 'warning', product: 'p1' } }],
              },
            ],
          },
          {
            // Exact pool comparisons: p1 compares every minute, p2's last was at 0 s and none since (a pass that never
            // completes): > 600 s old from minute 11, firing 5 m later.
            interval: '1m',
            input_series: [
              { series: lastExactComparison('p1'), values: '0+60x30' },
              { series: lastExactComparison('p2'), values: '0x30' },
            ],
            alert_rule_test: [
              { eval_time: '12m', alertname: 'QuotaAuditNotComparing', exp_alerts: [] },
              {
                eval_time: '17m',
                alertname: 'QuotaAuditNotComparing',
                exp_alerts: [{ exp_labels: { severity: 'warning', product: 'p2' } }],
              },
            ],
          },
          {
            // The worker answers its scrapes for 3 minutes, then not: QuotaWorkerDown after its minute.
            interval: '1m',
            input_series: [{ series: 'up{job="quota-worker",instance="worker:3000"}', values: '1 1 1 0 0 0 0' }],
            alert_rule_test: [
              { eval_time: '2m', alertname: 'QuotaWorkerDown', exp_alerts: [] },
              {
                eval_time: '5m',
                alertname: 'QuotaWorkerDown',
                exp_alerts: [{ exp_labels: { severity: 'critical', job: 'quota-worker', instance: 'worker:3000' } }],
              },
            ],
          },
          {
            // REDIS_WAIT_REPLICAS=1: master m2 loses its replica at minute 2 (a failover); writes go unconfirmed from
            // minute 2.
            interval: '1m',
            input_series: [
              { series: 'quota_redis_wait_replicas{job="quota-api",instance="api:3000"}', values: '1x15' },
              {
                series: 'quota_redis_replicas_attached{node="m1",job="quota-api",instance="api:3000"}',
                values: '1x15',
              },
              {
                series: 'quota_redis_replicas_attached{node="m2",job="quota-api",instance="api:3000"}',
                values: '1 1 0x13',
              },
              {
                series: 'quota_redis_replicas_unconfirmed_writes_total{job="quota-api",instance="api:3000"}',
                values: '0 0 0+30x13',
              },
            ],
            alert_rule_test: [
              { eval_time: '2m', alertname: 'QuotaRedisReplicasMissing', exp_alerts: [] },
              {
                eval_time: '4m',
                alertname: 'QuotaRedisReplicasMissing',
                exp_alerts: [{ exp_labels: { severity: 'critical', node: 'm2' } }],
              },
              { eval_time: '2m', alertname: 'QuotaRedisWritesUnconfirmed', exp_alerts: [] },
              {
                eval_time: '6m',
                alertname: 'QuotaRedisWritesUnconfirmed',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
            ],
          },
          {
            // No replica asked (REDIS_WAIT_REPLICAS=0): a master without replicas is no alert.
            interval: '1m',
            input_series: [
              { series: 'quota_redis_wait_replicas{job="quota-api",instance="api:3000"}', values: '0x15' },
              {
                series: 'quota_redis_replicas_attached{node="m1",job="quota-api",instance="api:3000"}',
                values: '0x15',
              },
            ],
            alert_rule_test: [{ eval_time: '10m', alertname: 'QuotaRedisReplicasMissing', exp_alerts: [] }],
          },
          {
            // Settlement backlog: the oldest pending draw ages 60 s a minute; > 300 s from minute 6, for 5 m.
            interval: '1m',
            input_series: [
              {
                series: 'quota_settlement_oldest_pending_age_seconds{job="quota-api",instance="api:3000"}',
                values: '0+60x20',
              },
            ],
            alert_rule_test: [
              { eval_time: '10m', alertname: 'QuotaSettlementBacklogStale', exp_alerts: [] },
              {
                eval_time: '12m',
                alertname: 'QuotaSettlementBacklogStale',
                exp_alerts: [{ exp_labels: { severity: 'critical' } }],
              },
            ],
          },
          {
            // Webhooks: a backlog growing 200 a minute (past 1,000 from minute 6), for 10 m; an oldest entry aging.
            interval: '1m',
            input_series: [
              {
                series: 'quota_webhook_backlog{stage="outbox",job="quota-api",instance="api:3000"}',
                values: '0+200x30',
              },
              {
                series: 'quota_webhook_oldest_pending_age_seconds{job="quota-api",instance="api:3000"}',
                values: '0x30',
              },
              {
                series: 'quota_webhook_events_lost_total{job="quota-worker",instance="worker:3000"}',
                values: '0 0 0 3x10',
              },
            ],
            alert_rule_test: [
              { eval_time: '12m', alertname: 'QuotaWebhookBacklogGrowing', exp_alerts: [] },
              {
                eval_time: '20m',
                alertname: 'QuotaWebhookBacklogGrowing',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
              { eval_time: '2m', alertname: 'QuotaWebhookEventsLost', exp_alerts: [] },
              {
                eval_time: '4m',
                alertname: 'QuotaWebhookEventsLost',
                exp_alerts: [{ exp_labels: { severity: 'critical' } }],
              },
            ],
          },
          {
            // A receiver down: the backlog stays small but its oldest entry ages 60 s a minute (> 300 s from minute 6).
            interval: '1m',
            input_series: [
              {
                series: 'quota_webhook_backlog{stage="in_flight",job="quota-api",instance="api:3000"}',
                values: '5x20',
              },
              {
                series: 'quota_webhook_oldest_pending_age_seconds{job="quota-api",instance="api:3000"}',
                values: '0+60x20',
              },
            ],
            alert_rule_test: [
              { eval_time: '12m', alertname: 'QuotaWebhookBacklogGrowing', exp_alerts: [] },
              {
                eval_time: '18m',
                alertname: 'QuotaWebhookBacklogGrowing',
                exp_alerts: [{ exp_labels: { severity: 'warning' } }],
              },
            ],
          },
          {
            // About 2% of API requests answer 5xx; the probes' 503s do not count either way.
            interval: '1m',
            input_series: [
              {
                series: `quota_http_request_duration_seconds_count{${reserve},status_class="2xx"}`,
                values: '0+100x20',
              },
              { series: `quota_http_request_duration_seconds_count{${reserve},status_class="5xx"}`, values: '0+2x20' },
              {
                series: 'quota_http_request_duration_seconds_count{route="/metrics",method="GET",status_class="2xx"}',
                values: '0+10000x20',
              },
            ],
            alert_rule_test: [
              { eval_time: '3m', alertname: 'QuotaHttp5xxRate', exp_alerts: [] },
              {
                eval_time: '10m',
                alertname: 'QuotaHttp5xxRate',
                exp_alerts: [{ exp_labels: { severity: 'critical' } }],
              },
            ],
          },
          {
            // 0.5% of API requests answer 5xx, and /readyz answers 503 a lot: no alert.
            interval: '1m',
            input_series: [
              {
                series: `quota_http_request_duration_seconds_count{${reserve},status_class="2xx"}`,
                values: '0+200x20',
              },
              { series: `quota_http_request_duration_seconds_count{${reserve},status_class="5xx"}`, values: '0+1x20' },
              {
                series: 'quota_http_request_duration_seconds_count{route="/readyz",method="GET",status_class="5xx"}',
                values: '0+50x20',
              },
            ],
            alert_rule_test: [{ eval_time: '15m', alertname: 'QuotaHttp5xxRate', exp_alerts: [] }],
          },
        ],
      };
      writeFileSync(join(dir, 'alerts.test.yml'), stringifyYaml(tests));
      const r = spawnSync(PROMTOOL!, ['test', 'rules', 'alerts.test.yml'], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    });

    it('promtool parses every dashboard query (as recording rules, Grafana variables filled in)', () => {
      const rules = dashboardExprs.map((expr, i) => ({
        record: `dashboard:query_${i}:check`,
        expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$product', '.*'),
      }));
      writeFileSync(join(dir, 'dashboard-queries.yml'), stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
      const r = promtool(['check', 'rules', join(dir, 'dashboard-queries.yml')]);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`${rules.length} rules found`);
    });
  });
});

describe('Grafana provisioning and dashboard', () => {
  const ds = datasources.datasources[0];

  it('provisions the Prometheus of the compose file with a fixed uid, and a file dashboard provider', () => {
    expect(datasources.datasources).toHaveLength(1);
    expect(ds).toMatchObject({ type: 'prometheus', uid: 'prometheus', url: 'http://prometheus:9090', isDefault: true });
    expect(services.prometheus.ports).toContain('127.0.0.1:9090:9090');
    expect(dashboardProviders.providers).toHaveLength(1);
    expect(dashboardProviders.providers[0]).toMatchObject({ type: 'file' });
  });

  it('the dashboard: unique ids, every panel on the provisioned datasource with at least one query', () => {
    expect(dashboard.uid).toBe('quota-allocator');
    expect(typeof dashboard.title).toBe('string');
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dataPanels.length).toBeGreaterThanOrEqual(12);
    for (const p of dataPanels) {
      expect(p.datasource?.uid, p.title).toBe(ds.uid);
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        expect(t.datasource?.uid ?? p.datasource.uid, p.title).toBe(ds.uid);
        expect(typeof t.expr, p.title).toBe('string');
        expect(t.expr.trim().length, p.title).toBeGreaterThan(0);
        expect(metricNames(t.expr).length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
      }
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type === 'query') expect(v.datasource?.uid, v.name).toBe(ds.uid);
    }
  });

  it('has the panels operations asked for', () => {
    const has = (re: RegExp) => dashboardExprs.some((e) => re.test(e));
    expect(has(/sum by \(result\) \(rate\(quota_decisions_total\{operation="reserve"\}/)).toBe(true);
    expect(has(/quota_decisions_total\{result!="OK"\}/)).toBe(true);
    for (const q of ['0.5', '0.99']) {
      const reserveRoute = 'route="/v1/products/:productId/reservations",method="POST"';
      const quantile = `histogram_quantile\\(${q}, sum by \\(le\\) \\(rate\\(`;
      expect(has(new RegExp(`${quantile}quota_http_request_duration_seconds_bucket\\{${reserveRoute}\\}`))).toBe(true);
      expect(
        has(new RegExp(`histogram_quantile\\(${q}, sum by \\(le\\) \\(rate\\(quota_settlement_latency_seconds_bucket`)),
      ).toBe(true);
    }
    expect(has(/histogram_quantile\(0\.99, sum by \(le, script\) \(rate\(quota_script_duration_seconds_bucket/)).toBe(
      true,
    );
    for (const m of [
      'quota_pool_available',
      'quota_pool_held',
      'quota_pool_committed',
      'quota_settlement_backlog',
      'quota_settlement_oldest_pending_age_seconds',
      'quota_settlement_outcomes_total',
      'quota_settlement_unknown',
      'quota_audit_violations',
      'bullmq_job_count',
      'quota_redis_up',
    ]) {
      expect(
        dashboardExprs.some((e) => metricNames(e).includes(m)),
        m,
      ).toBe(true);
    }
  });
});

describe('against the running service', () => {
  let svc: ServiceContext;
  let scrape: string;
  const p = uniqueId('deploy');

  beforeAll(async () => {
    svc = await startServiceContext();
    // A short flow: a product and a line, a draw committed, one released, refusals, repayments.
    expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 100_000, holdTtlSeconds: 60 })).status).toBe(201);
    expect((await svc.admin('PUT', `/v1/products/${p}/customers/c1`, { limit: 50_000 })).status).toBe(201);
    const reserve = (customerId: string, amount: number) =>
      svc.client(
        'POST',
        `/v1/products/${p}/reservations`,
        { customerId, amount },
        { 'Idempotency-Key': uniqueId('k') },
      );
    const committed = await reserve('c1', 1_000);
    expect(committed.status).toBe(201);
    const id = committed.body.reservationId;
    expect((await svc.client('POST', `/v1/products/${p}/reservations/${id}/commit`, {})).status).toBe(200);
    const released = await reserve('c1', 500);
    expect(released.status).toBe(201);
    expect(
      (await svc.client('POST', `/v1/products/${p}/reservations/${released.body.reservationId}/release`)).status,
    ).toBe(200);
    expect((await reserve('c1', 60_000)).body.code).toBe('CUSTOMER_LIMIT_EXCEEDED');
    expect((await reserve('nobody', 100)).body.code).toBe('NO_CREDIT_LINE');
    const repay = (amount: number) =>
      svc.client('POST', `/v1/products/${p}/customers/c1/repayments`, { amount }, { 'Idempotency-Key': uniqueId('r') });
    expect((await repay(1_000_000)).body.code).toBe('REPAYMENT_EXCEEDS_DRAWN');
    // Settlement through the service's own ledger (no SETTLEMENT_URL), by the in-process worker.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await svc.client('GET', `/v1/products/${p}/reservations/${id}`);
      if (r.body.status === 'settled') break;
      if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(r.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await repay(100)).status).toBe(200);
    const res = await svc.call('GET', '/metrics', { key: null });
    expect(res.status).toBe(200);
    scrape = res.body as string;
  });
  afterAll(() => svc?.stop());

  it('every metric a dashboard panel or an alert refers to is in the scrape', () => {
    const { types, samples } = parseScrape(scrape);
    const referenced = new Map<string, string[]>();
    for (const [where, exprs] of [
      ['dashboard', dashboardExprs],
      ['alerts', alertExprs],
    ] as const) {
      for (const expr of exprs)
        for (const name of metricNames(expr)) referenced.set(name, [...(referenced.get(name) ?? []), where]);
    }
    expect(referenced.size).toBeGreaterThan(15);
    // `up` is made by Prometheus for each target; it is never in a scrape.
    const PROMETHEUS_MADE = new Set(['up']);
    // Labelled gauges with no series until the invariant audit has run for a product: whether its first run
    // falls inside this short flow depends on the machine's speed, so they are only required to be declared.
    const NO_SERIES_YET = new Set(['quota_audit_violations', 'quota_audit_last_exact_comparison_timestamp_seconds']);
    const missing = [...referenced.keys()].filter((n) => !PROMETHEUS_MADE.has(n) && !familyOf(n, types));
    expect(missing, `referenced but not in /metrics: ${missing.join(', ')}`).toEqual([]);
    const withoutSamples = [...referenced.keys()].filter(
      (n) => !PROMETHEUS_MADE.has(n) && !NO_SERIES_YET.has(n) && !samples.has(n),
    );
    expect(withoutSamples, `referenced but without a sample after the flow: ${withoutSamples.join(', ')}`).toEqual([]);
  });

  it('the scrape shows the flow: decisions, pool gauges for the product, a settled draw, the queue', () => {
    const value = (re: RegExp) => Number(re.exec(scrape)?.[1] ?? NaN);
    expect(value(/^quota_decisions_total\{operation="reserve",result="OK"\} (\S+)/m)).toBeGreaterThanOrEqual(2);
    expect(
      value(/^quota_decisions_total\{operation="reserve",result="CUSTOMER_LIMIT_EXCEEDED"\} (\S+)/m),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value(/^quota_decisions_total\{operation="repay",result="REPAYMENT_EXCEEDS_DRAWN"\} (\S+)/m),
    ).toBeGreaterThanOrEqual(1);
    expect(value(new RegExp(`^quota_pool_capacity\\{product="${p}"\\} (\\S+)`, 'm'))).toBe(100_000);
    expect(value(new RegExp(`^quota_pool_available\\{product="${p}"\\} (\\S+)`, 'm'))).toBe(99_000);
    expect(value(/^quota_settlement_latency_seconds_count (\S+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^quota_settlement_outcomes_total\{outcome="settled",changed="true"\} (\S+)/m)).toBeGreaterThanOrEqual(
      1,
    );
    expect(value(/^quota_redis_up (\S+)/m)).toBe(1);
    expect(scrape).toMatch(/^bullmq_job_count\{queue="settlement", state="completed"\} \d+/m);
    const bucket = String.raw`quota_http_request_duration_seconds_bucket\{le="[^"]+"`;
    const reserves = 'route="/v1/products/:productId/reservations",method="POST"';
    expect(scrape).toMatch(new RegExp(String.raw`^${bucket},${reserves},status_class="2xx"\}`, 'm'));
  });

  it.runIf(PROMTOOL)('promtool parses the scrape (lint findings aside)', () => {
    const r = promtool(['check', 'metrics'], scrape.endsWith('\n') ? scrape : scrape + '\n');
    expect(r.stdout + r.stderr).not.toMatch(/pars(e|ing) error|error while linting/i);
  });

  it(
    "the compose api's healthcheck answers 0 when healthy, 1 when " +
      "not (the image's own: the images describe above)",
    async () => {
      const apiCheck = (port: string) =>
        healthcheckArgv(services.api.healthcheck.test).map((a) => a.replace(':3000/', `:${port}/`));
      expect(await runHealthcheck(apiCheck(String(svc.service.port)))).toBe(0);
      expect(await runHealthcheck(apiCheck('1'))).toBe(1);
    },
  );

  it("the compose ledger's healthcheck answers 0 against the real test ledger", async () => {
    const config = parseLedgerEnv({ ...envOf(services.ledger), LEDGER_PORT: '0', LEDGER_HOST: '127.0.0.1' });
    const ledger = createLedgerServer(config.options);
    await ledger.start();
    try {
      const check = healthcheckArgv(services.ledger.healthcheck.test).map((a) =>
        a.replace(':4000/', `:${ledger.port}/`),
      );
      expect(await runHealthcheck(check)).toBe(0);
    } finally {
      await ledger.stop();
    }
    const check = healthcheckArgv(services.ledger.healthcheck.test).map((a) => a.replace(':4000/', ':1/'));
    expect(await runHealthcheck(check)).toBe(1);
  });
});
