/**
 * The OpenAPI document (GET /openapi.json): served without a key, valid
 * OpenAPI 3.1 for a real validator, in step with the routes the app really
 * mounts (both ways), with the roles the app really enforces, and listing
 * every error code of src/http/problems.ts.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { validate, compileErrors } from '@readme/openapi-parser';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { oas31 } from 'zod-openapi';
import { parseConfig } from '../../src/config.js';
import { createApp, type AppDeps } from '../../src/http/app.js';
import { openApiRoutes } from '../../src/http/openapi.js';
import { PROBLEMS } from '../../src/http/problems.js';
import { ADMIN_KEY, CLIENT_KEY, uniqueId } from '../support/api.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

let svc: ServiceContext;
let doc: oas31.OpenAPIObject;
beforeAll(async () => {
  svc = await startServiceContext();
  const res = await svc.call<oas31.OpenAPIObject>('GET', '/openapi.json', { key: null });
  expect(res.status).toBe(200);
  doc = res.body;
});
afterAll(() => svc.stop());

interface Operation {
  method: string;
  path: string;
  op: oas31.OperationObject;
}

function documentedOperations(): Operation[] {
  return Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    METHODS.flatMap((method) => (item[method] ? [{ method, path, op: item[method] }] : [])),
  );
}

/** The role an operation documents (`bearerAuth: [role]`), or null when it needs no key. */
function documentedRole(op: oas31.OperationObject): string | null {
  const requirement = op.security?.[0];
  if (!requirement) return null;
  return requirement.bearerAuth?.[0] ?? 'none given';
}

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
  rawPath?: unknown;
}

/**
 * `METHOD /path` for every route in an express app's router, in OpenAPI
 * spelling (`:id` → `{id}`, `\:` → `:`). Anything mounted at a path of its
 * own (bull-board's dashboard) counts as one GET at its mount point: its
 * inner routes belong to that library.
 */
function mountedRoutes(stack: Layer[]): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const path = layer.route.path.replace(/(?<!\\):(\w+)/g, '{$1}').replace(/\\:/g, ':');
      return Object.keys(layer.route.methods)
        .filter((m) => m !== '_all')
        .map((m) => `${m.toUpperCase()} ${path}`);
    }
    if (layer.rawPath !== '/') return [`GET ${String(layer.rawPath)}`];
    return layer.handle.stack ? mountedRoutes(layer.handle.stack) : [];
  });
}

/**
 * The route table of the app `npm start` serves, built by the same createApp.
 * The dependencies are stand-ins: building the app only wires them, and this
 * app never serves a request.
 */
function appRoutes(): string[] {
  const standIn = {} as never;
  const deps: AppDeps = {
    engine: standIn,
    logger: standIn,
    metrics: standIn,
    readiness: standIn,
    queries: standIn,
    rateLimits: standIn,
    apiKeys: [],
    bodyLimitBytes: 1024,
    bulkLimitBytes: 1024,
    shedMaxInFlight: 0,
    settlement: { queues: [], ensureJob: async () => '' },
  };
  const app = createApp(deps) as unknown as { router: { stack: Layer[] } };
  return mountedRoutes(app.router.stack);
}

/** A concrete URL for a documented path: every parameter gets an id no test created. */
function concrete(path: string, missing: string): string {
  return path.replace(/\{\w+\}/g, missing);
}

describe('GET /openapi.json', () => {
  it('answers the document as JSON without a key', async () => {
    const res = await svc.call('GET', '/openapi.json', { key: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body.openapi).toBe('3.1.0');
  });

  it('names the address the service listens on as its server when PUBLIC_URL is not set', () => {
    expect(doc.servers).toEqual([expect.objectContaining({ url: svc.baseUrl })]);
  });

  it('names PUBLIC_URL as its server when set (the route as createApp mounts it, given config.publicUrl)', async () => {
    const app = express().use(openApiRoutes(parseConfig({ PUBLIC_URL: 'https://quota.bank.example/' }).publicUrl));
    const server = app.listen(0, '127.0.0.1');
    try {
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      const body = (await (await fetch(`http://127.0.0.1:${port}/openapi.json`)).json()) as oas31.OpenAPIObject;
      expect(body.servers).toEqual([expect.objectContaining({ url: 'https://quota.bank.example' })]);
    } finally {
      server.close();
    }
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    // validate() resolves $refs in place: give it a copy.
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
  });
});

describe('the document and the app agree', () => {
  it('every route the app mounts is documented with its method, and nothing else is', () => {
    const mounted = appRoutes();
    expect(mounted.filter((r) => r.includes(' /v1/')).length).toBeGreaterThanOrEqual(15);
    const documented = documentedOperations().map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect([...documented].sort()).toEqual([...new Set(mounted)].sort());
  });

  it('each operation needs the key the document says: none, client or admin', async () => {
    const missing = uniqueId('absent');
    for (const { path, op, ...operation } of documentedOperations()) {
      const method = operation.method.toUpperCase(); // fetch leaves a lowercase `patch` as it is
      const url = concrete(path, missing);
      const role = documentedRole(op);
      const label = `${method} ${path}`;
      if (role === null) {
        expect((await svc.call(method, url, { key: null })).status, label).toBe(200);
        continue;
      }
      expect(['admin', 'client'], label).toContain(role);
      const anonymous = await svc.call(method, url, { key: null });
      expect(anonymous.status, label).toBe(401);
      expect(anonymous.body.code, label).toBe('UNAUTHENTICATED');

      // Auth comes first, so these calls change nothing; a client call on a
      // client route reaches the route and is refused for the missing product.
      const asClient = await svc.call(method, url, { key: CLIENT_KEY, body: method === 'GET' ? undefined : {} });
      if (role === 'admin') {
        expect(asClient.status, label).toBe(403);
        expect(asClient.body.code, label).toBe('FORBIDDEN');
      } else if (!path.includes('{')) {
        expect(asClient.status, label).toBe(200); // a listing with nothing missing (GET /v1/products)
        expect(op.responses?.['200'], label).toBeDefined();
      } else {
        expect([400, 404], label).toContain(asClient.status);
      }
      // Whatever it answered is a documented response, naming that code.
      for (const res of asClient.status === 200 ? [anonymous] : [anonymous, asClient]) {
        const documentedResponse = op.responses?.[String(res.status)] as oas31.ResponseObject | undefined;
        expect(documentedResponse, `${label} answers ${res.status}`).toBeDefined();
        expect(documentedResponse?.description, label).toContain(`\`${res.body.code}\``);
      }
    }
  });

  it('an admin key passes the admin check (the dashboard answers)', async () => {
    const res = await svc.call('GET', '/admin/queues', { key: ADMIN_KEY });
    expect(res.status).toBe(200);
  });

  it('reserve and repayment require the Idempotency-Key header', () => {
    const paths = doc.paths ?? {};
    for (const path of [
      '/v1/products/{productId}/reservations',
      '/v1/products/{productId}/customers/{customerId}/repayments',
    ]) {
      const parameters = (paths[path]?.post?.parameters ?? []) as oas31.ParameterObject[];
      expect(parameters.find((p) => p.in === 'header' && p.name === 'Idempotency-Key')?.required, path).toBe(true);
    }
  });
});

describe('errors', () => {
  it('the ErrorCode enum lists exactly the codes of src/http/problems.ts (the error catalogue)', () => {
    const schema = doc.components?.schemas?.ErrorCode as oas31.SchemaObject;
    expect([...(schema.enum ?? [])].sort()).toEqual(Object.keys(PROBLEMS).sort());
  });

  it('the Problem schema has type, title, status, code, detail, and an optional drawable', () => {
    const schema = doc.components?.schemas?.Problem as oas31.SchemaObject;
    expect([...(schema.required ?? [])].sort()).toEqual(['code', 'detail', 'status', 'title', 'type']);
    expect(Object.keys(schema.properties ?? {})).toContain('drawable');
    expect(schema.properties?.code).toEqual({ $ref: '#/components/schemas/ErrorCode' });
  });
});
