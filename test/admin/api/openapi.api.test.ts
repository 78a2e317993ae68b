import http from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Validator } from '@seriousme/openapi-schema-validator';
import Koa from 'koa';

import { createAdminApi } from '../../../src/admin/api/api.router.js';
import { problemErrors } from '../../../src/admin/api/problem.js';
import { createLogger } from '../../../src/logging/logger.js';
import { startTestServer } from '../../support/test-server.js';
import type { TestServer } from '../../support/test-server.js';
import { ALL_SCOPES, PREFIX, adminToken, call, expectProblem } from './api-client.js';

/**
 * The OpenAPI document (generated from the route table that registers the routes) and what
 * every request under /api/admin/v1 gets when it goes wrong: problem+json.
 */

type Operation = { operationId: string; security: Record<string, string[]>[]; parameters?: { name: string; in: string }[] };

let server: TestServer;
let token: string;

beforeAll(async () => {
  server = await startTestServer('admin_api_openapi', { logLevel: 'warn' });
  ({ token } = await adminToken(server));
});

afterAll(async () => {
  await server.close();
});

describe('the OpenAPI document', () => {
  it('is served without a token and is a valid OpenAPI 3.1 document', async () => {
    const answer = await call(server, 'GET', 'openapi.json');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(answer.body.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(answer.body as Record<string, unknown>);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('is the route table: every route, with its scope, and nothing else', async () => {
    const api = createAdminApi(server.deps);
    const served = (await call(server, 'GET', 'openapi.json')).body as { paths: Record<string, Record<string, Operation>> };
    expect(served).toEqual(api.openApiDocument());

    const documented = Object.entries(served.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({ path, method, op })),
    );
    expect(documented).toHaveLength(api.routes.length);
    for (const route of api.routes) {
      const op = served.paths[route.path]?.[route.method];
      expect(op?.operationId).toBe(route.operationId);
      expect(op?.security).toEqual(route.scope ? [{ oauth2: [route.scope] }, { bearer: [] }] : []);
      for (const name of route.path.match(/\{(\w+)\}/g) ?? []) {
        expect(op?.parameters?.some((p) => p.in === 'path' && `{${p.name}}` === name)).toBe(true);
      }
    }
  });

  it('lists every route the router registered', () => {
    const api = createAdminApi(server.deps);
    const document = api.openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const registered = api.router.stack.flatMap((layer) =>
      layer.methods.filter((m) => m !== 'HEAD').map((m) => ({ method: m.toLowerCase(), path: String(layer.path) })),
    );
    expect(registered.length).toBe(api.routes.length);
    for (const { method, path } of registered) {
      expect(path.startsWith(PREFIX)).toBe(true);
      const openApiPath = path.slice(PREFIX.length).replace(/:(\w+)/g, '{$1}');
      expect(document.paths[openApiPath]?.[method]).toBeDefined();
    }
  });

  it('names the token endpoint, the scopes and the problem schema', async () => {
    const doc = (await call(server, 'GET', 'openapi.json')).body;
    expect(doc.servers).toEqual([{ url: server.config.adminApi.resource }]);
    expect(doc.components.securitySchemes.oauth2.flows.clientCredentials.tokenUrl).toBe(`${server.url}/token`);
    expect(Object.keys(doc.components.securitySchemes.oauth2.flows.clientCredentials.scopes)).toEqual(ALL_SCOPES);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.Problem.properties).toHaveProperty('errors');
    const create = doc.paths['/clients'].post;
    expect(create.requestBody.content['application/json'].schema.properties).toHaveProperty('redirectUris');
    expect(create.responses['400'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
    expect(doc.paths['/audit-events/export'].get.responses['200'].content).toHaveProperty(['application/x-ndjson']);
  });

  it('describes admin:clients:grant and the 403s of the rule that nobody gives more than they hold', async () => {
    const doc = (await call(server, 'GET', 'openapi.json')).body;
    const scopes = doc.components.securitySchemes.oauth2.flows.clientCredentials.scopes as Record<string, string>;
    expect(scopes['admin:clients:grant']).toMatch(/management API scopes .*first-party/);
    expect(doc.info.description).toMatch(/client\.scope_not_held/);
    expect(doc.info.description).toMatch(/user\.scope_not_held/);
    const forbidden = (path: string, method: string) => doc.paths[path][method].responses['403'].description as string;
    const clientChanges: [string, string][] = [
      ['/clients', 'post'],
      ['/clients/{clientId}', 'put'],
      ['/clients/{clientId}', 'delete'],
      ['/clients/{clientId}/secret', 'post'],
    ];
    for (const [path, method] of clientChanges) {
      expect(forbidden(path, method)).toMatch(/admin:clients:grant.*client\.scope_not_held/);
      expect(doc.paths[path][method].responses['403'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
    }
    const userChanges: [string, string][] = [
      ['/users', 'post'],
      ['/users/{userId}', 'patch'],
      ['/users/{userId}', 'delete'],
      ['/users/{userId}/disable', 'post'],
      ['/users/{userId}/enable', 'post'],
      ['/users/{userId}/reset-mfa', 'post'],
      ['/users/{userId}/require-password-reset', 'post'],
    ];
    for (const [path, method] of userChanges) {
      expect(forbidden(path, method)).toMatch(/every management API scope.*user\.scope_not_held/);
    }
    // Reading needs only its scope: no such 403.
    expect(forbidden('/clients', 'get')).not.toMatch(/scope_not_held/);
    expect(forbidden('/registration-tokens', 'post')).not.toMatch(/scope_not_held/);
  });

  it('is reachable through the discovery of nothing else: the provider does not answer under the prefix', async () => {
    const answer = await call(server, 'GET', `${PREFIX}`);
    expectProblem(answer, 404, 'not_found');
  });
});

describe('errors under /api/admin/v1', () => {
  it('404 for an unknown operation', async () => {
    expectProblem(await call(server, 'GET', 'no-such-thing', { token }), 404, 'not_found');
    expectProblem(await call(server, 'GET', 'clients/a/b/c', { token }), 404, 'not_found');
  });

  it('405 with Allow for a known path and another method', async () => {
    const answer = await call(server, 'PATCH', 'clients', { token, json: {} });
    expectProblem(answer, 405, 'request.method_not_allowed');
    expect(answer.headers.get('allow')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
    expectProblem(await call(server, 'DELETE', 'openapi.json'), 405, 'request.method_not_allowed');
  });

  it('415 for a body that is not JSON', async () => {
    const answer = await call(server, 'POST', 'users', { token, raw: 'email=a@example.test', contentType: 'application/x-www-form-urlencoded' });
    expectProblem(answer, 415, 'request.unsupported_media_type');
    expectProblem(await call(server, 'POST', 'users', { token, raw: '{}', contentType: 'application/json; charset=latin1' }), 415);
  });

  it('413 for a body over 64 KiB', async () => {
    const answer = await call(server, 'POST', 'users', { token, json: { email: 'big@example.test', name: 'x'.repeat(70 * 1024) } });
    expectProblem(answer, 413, 'request.too_large');
  });

  it('400 for malformed JSON and for a missing body', async () => {
    expectProblem(await call(server, 'POST', 'users', { token, raw: '{"email": ', contentType: 'application/json' }), 400, 'request.malformed_json');
    expectProblem(await call(server, 'POST', 'users', { token, raw: Buffer.from([0x7b, 0xff, 0x7d]), contentType: 'application/json' }), 400, 'request.malformed_json');
    expectProblem(await call(server, 'POST', 'users', { token }), 400, 'request.body_required');
    expectProblem(await call(server, 'POST', 'users', { token, json: ['not', 'an', 'object'] }), 400, 'request.invalid', ['input']);
  });

  it('checks the token before the body', async () => {
    expectProblem(await call(server, 'POST', 'users', { raw: 'not json', contentType: 'text/plain' }), 401, 'auth.token_missing');
  });

  it('500 without a stack or a message from inside', async () => {
    const lines: string[] = [];
    const app = new Koa();
    app.use(problemErrors({ logger: createLogger({ level: 'error', format: 'json', write: (line) => lines.push(line) }) }));
    app.use(() => {
      throw new Error('internal detail: connection string mongodb://secret');
    });
    const httpServer = http.createServer(app.callback());
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = httpServer.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/api/admin/v1/anything`);
      const text = await response.text();
      expect(response.status).toBe(500);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
      expect(JSON.parse(text)).toEqual({
        type: 'about:blank',
        title: 'Internal Server Error',
        status: 500,
        detail: 'Something went wrong on our side. Try again later.',
        instance: '/api/admin/v1/anything',
        code: 'server_error',
      });
      expect(text).not.toContain('secret');
      expect(lines.join('\n')).toContain('admin api request failed');
    } finally {
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }
  });
});
