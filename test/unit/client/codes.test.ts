/**
 * The client's per-operation error codes (packages/client/src/codes.ts,
 * written out by hand: the client may not depend on the service's code) equal
 * what the service's OpenAPI document declares for that route, per status,
 * so the narrowed `problem.code` types cannot drift from the catalogue
 * (src/errors/catalogue.ts) that the document is built from.
 */
import { describe, expect, it } from 'vitest';
import { ANY_PATH_CODES, OPERATION_CODES } from '../../../packages/client/src/codes.js';
import { createOpenApiDocument } from '../../../src/http/openapi.js';

interface ProblemSchema {
  allOf?: { properties?: { code?: { enum?: string[] } } }[];
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: { ErrorCode: { enum: string[] } } };
}
interface Operation {
  operationId?: string;
  responses?: Record<string, { content?: Record<string, { schema?: ProblemSchema }> }>;
}

/** The document as GET /openapi.json serves it. */
const doc = JSON.parse(JSON.stringify(createOpenApiDocument())) as Document;

/** Operations the client has no method for: the bull-board dashboard is an HTML page for browsers. */
const NOT_IN_THE_CLIENT = new Set(['queueDashboard']);

/** Each operation's problem codes by status, as the OpenAPI document lists them. */
function documentedCodes(): Map<string, Map<number, string[]>> {
  const byOperation = new Map<string, Map<number, string[]>>();
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item)) {
      const byStatus = new Map<number, string[]>();
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        const schema = response.content?.['application/problem+json']?.schema;
        if (!schema) continue;
        const codes = (schema.allOf ?? []).flatMap((part) => part.properties?.code?.enum ?? []);
        // A problem response whose codes cannot be read would make this test vacuous.
        expect(codes, `${op.operationId} ${status}`).not.toEqual([]);
        byStatus.set(Number(status), codes);
      }
      if (op.operationId && byStatus.size > 0) byOperation.set(op.operationId, byStatus);
    }
  }
  return byOperation;
}

/**
 * What the client can hand back as a problem value: every documented code
 * except a 5xx other than 503 (the transport throws those: kind `server`),
 * plus the codes any path can answer.
 */
function expectedClientCodes(byStatus: Map<number, string[]>): string[] {
  const returned = [...byStatus].filter(([status]) => status < 500 || status === 503).flatMap(([, codes]) => codes);
  return [...new Set([...returned, ...ANY_PATH_CODES])].sort();
}

const documented = documentedCodes();

describe("the client's codes per operation equal the OpenAPI document's", () => {
  it('the client covers every documented operation that answers problems, and no other', () => {
    const documentedOps = [...documented.keys()].filter((op) => !NOT_IN_THE_CLIENT.has(op)).sort();
    expect(Object.keys(OPERATION_CODES).sort()).toEqual(documentedOps);
  });

  it.each(Object.entries(OPERATION_CODES))('%s', (operationId, codes) => {
    const byStatus = documented.get(operationId);
    if (!byStatus) return expect.fail(`${operationId} is not an operation of the OpenAPI document`);
    expect(new Set(codes).size, 'a code listed twice').toBe(codes.length);
    expect([...codes].sort()).toEqual(expectedClientCodes(byStatus));
  });

  it('the codes any path can answer are codes the service has', () => {
    expect(doc.components.schemas.ErrorCode.enum).toEqual(expect.arrayContaining([...ANY_PATH_CODES]));
  });
});
