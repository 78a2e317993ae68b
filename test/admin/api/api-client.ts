import { expect } from '@jest/globals';

import { mintAdminApiToken } from '../../../src/admin/api/api-tokens.js';
import type { AdminAuthority } from '../../../src/clients/admin-authority.js';
import { fullAuthority } from '../../../src/clients/admin-authority.js';
import type { TestServer } from '../../support/test-server.js';

/** Calls to the management API of a test server, and what the tests check on every answer. */

export const PREFIX = '/api/admin/v1';

export const ALL_SCOPES = ['admin:clients:read', 'admin:clients:write', 'admin:clients:grant', 'admin:users:read', 'admin:users:write', 'admin:audit:read'];

/** Test setup acts as the command line would: with every power. */
export const SETUP: AdminAuthority = fullAuthority({ type: 'system', label: 'test setup' });

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers are inspected freely in tests
  body: any;
}

export interface CallOptions {
  token?: string | undefined;
  /** A JSON body (serialised), or a raw string with `contentType`. */
  json?: unknown;
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export async function call(server: TestServer, method: string, path: string, options: CallOptions = {}): Promise<ApiAnswer> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] = options.contentType ?? 'application/json';
  } else if (options.raw !== undefined) {
    body = options.raw;
    if (options.contentType) headers['content-type'] = options.contentType;
  }
  const response = await fetch(`${server.url}${path.startsWith('/') ? path : `${PREFIX}/${path}`}`, {
    method,
    headers,
    ...(body !== undefined ? { body: new Uint8Array(Buffer.from(body)) } : {}),
    redirect: 'manual',
  });
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  const parsed: unknown = /json/.test(type) && !/ndjson/.test(type) && text ? JSON.parse(text) : undefined;
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** An RFC 9457 problem with this status (and code, and field names when given). */
export function expectProblem(answer: ApiAnswer, status: number, code?: string, fields?: string[]): void {
  expect({ status: answer.status, type: answer.headers.get('content-type') }).toEqual({ status, type: 'application/problem+json' });
  expect(answer.body).toMatchObject({ type: 'about:blank', status, title: expect.any(String), detail: expect.any(String) });
  expect(answer.text).not.toMatch(/at .*\.(ts|js):\d+/);
  if (code) expect(answer.body.code).toBe(code);
  if (fields) {
    const named = (answer.body.errors as { field: string; message: string }[] | undefined)?.map((e) => e.field) ?? [];
    for (const field of fields) expect(named).toContain(field);
    for (const entry of answer.body.errors as { message: string }[]) expect(entry.message).toEqual(expect.any(String));
  }
}

let adminCounter = 0;

/** A new enabled admin account and a management API token for it, minted as the console would. */
export async function adminToken(server: TestServer, scopes: string[] = ALL_SCOPES): Promise<{ token: string; accountId: string; email: string }> {
  adminCounter += 1;
  const email = `admin${adminCounter}-${Date.now()}@example.test`;
  const admin = await server.deps.userAdmin.create({ email, roles: ['admin'], emailVerified: true }, SETUP);
  const { token } = await mintAdminApiToken(server.deps.provider, server.config, { accountId: admin.id, scopes });
  return { token, accountId: admin.id, email };
}

/** RFC 6749 §4.4 at the token endpoint, client_secret_basic (§2.3.1: form-encoded id and secret). */
export async function clientCredentialsToken(
  server: TestServer,
  client: { clientId: string; clientSecret: string },
  params: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const basic = Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64');
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
