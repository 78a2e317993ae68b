import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';

import { AUDIT_COLLECTION, createAuditService } from '../../src/audit/audit.service.js';
import type { AuditService } from '../../src/audit/audit.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { loadConfig } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createLogger } from '../../src/logging/logger.js';
import {
  API_RESOURCES_COLLECTION,
  ApiResourceValidationError,
  createApiResourceService,
  identifierProblem,
} from '../../src/resources/api-resource.service.js';
import type { ApiResourceService } from '../../src/resources/api-resource.service.js';
import { appErrorOf } from '../support/app-error.js';
import { testDatabaseUri } from '../support/database.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const ADMIN = fullAuthority({ type: 'account', id: 'admin-1', label: 'admin@example.com' });
const config = loadConfig({
  NODE_ENV: 'test',
  ISSUER: 'https://id.example.com',
  MONGODB_URI: 'mongodb://unused',
  COOKIE_KEYS: TEST_COOKIE_KEY,
  ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
});

let connection: Connection;
let db: mongo.Db;
let audit: AuditService;
let resources: ApiResourceService;

beforeAll(async () => {
  connection = await connectDatabase(testDatabaseUri('api-resource-service'), logger);
  db = connection.db!;
  audit = createAuditService({ db, logger, retentionDays: 30 });
  resources = createApiResourceService({ db, config, audit, logger });
  await resources.ensureIndexes();
});

afterAll(async () => {
  resources.stopWatching();
  await audit.flush();
  await connection.dropDatabase();
  await connection.close();
});

const notes = {
  identifier: 'https://notes.example.com/api',
  name: 'Notes API',
  scopes: [
    { name: 'notes:read', description: 'Read your notes' },
    { name: 'notes:write', description: 'Create and change your notes' },
  ],
};

describe('API resources', () => {
  it('creates, reads, lists, updates and deletes a resource, each change audited with its admin', async () => {
    const created = await resources.create(notes, ADMIN);
    expect(created).toMatchObject({ identifier: notes.identifier, name: 'Notes API', tokenFormat: 'jwt', introspectionClients: [] });
    expect(created.accessTokenTtl).toBeUndefined();
    expect(await resources.get(notes.identifier)).toEqual(created);
    expect(await resources.find(notes.identifier)).toEqual(created);
    expect((await resources.list()).map((r) => r.identifier)).toContain(notes.identifier);

    const updated = await resources.update(notes.identifier, { ...notes, tokenFormat: 'opaque', accessTokenTtl: 300, introspectionClients: ['notes-api'] }, ADMIN);
    expect(updated).toMatchObject({ tokenFormat: 'opaque', accessTokenTtl: 300, introspectionClients: ['notes-api'] });
    expect(await resources.get(notes.identifier)).toMatchObject({ tokenFormat: 'opaque', accessTokenTtl: 300 });

    expect(await resources.remove(notes.identifier, ADMIN)).toBe(true);
    expect(await resources.get(notes.identifier)).toBeUndefined();
    expect(await resources.remove(notes.identifier, ADMIN)).toBe(false);

    await audit.flush();
    const events = await db
      .collection(AUDIT_COLLECTION)
      .find({ 'target.id': notes.identifier })
      .sort({ at: 1 })
      .toArray();
    expect(events.map((e) => e.action)).toEqual(['api_resource.created', 'api_resource.updated', 'api_resource.deleted']);
    expect(events[1]?.details?.changed).toEqual(['tokenFormat', 'accessTokenTtl', 'introspectionClients']);
    expect(events.every((e) => e.actor?.id === 'admin-1')).toBe(true);
  });

  it('a watching node serves find() from memory and sees another node’s change within a poll', async () => {
    const other = createApiResourceService({ db, config, logger, cache: { pollIntervalMs: 50, trustMs: 500 } });
    other.startWatching();
    try {
      await resources.create({ ...notes, identifier: 'https://cache.example.com' }, ADMIN);
      expect((await other.find('https://cache.example.com'))?.name).toBe('Notes API');
      await resources.update('https://cache.example.com', { ...notes, name: 'Renamed' }, ADMIN);
      let seen = '';
      for (let i = 0; i < 40 && seen !== 'Renamed'; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        seen = (await other.find('https://cache.example.com'))?.name ?? '';
      }
      expect(seen).toBe('Renamed');
    } finally {
      other.stopWatching();
    }
  });

  it('100 admins creating the same identifier at once: one resource, 99 get 409 resource.exists', async () => {
    const identifier = 'https://race.example.com/';
    const outcomes = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => resources.create({ ...notes, identifier, name: `Race ${i}` }, ADMIN)));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(refused).toHaveLength(99);
    expect(refused.every((o) => (o.reason as { code?: string }).code === 'resource.exists' && (o.reason as { status?: number }).status === 409)).toBe(true);
    expect(await db.collection(API_RESOURCES_COLLECTION).countDocuments({ _id: identifier as never })).toBe(1);
  });

  it.each([
    ['not a URI', 'notes-api', 'absolute URI'],
    ['a fragment', 'https://api.example.com/#x', 'fragment'],
    ['a query', 'https://api.example.com/?v=1', 'query'],
    ['another scheme', 'ftp://api.example.com/', 'https, http or urn'],
    ['credentials', 'https://user:pw@api.example.com/', 'user name'],
    ['the management API', config.adminApi.resource, 'management API'],
    ['our own origin', 'https://id.example.com/anything', 'own origin'],
  ])('refuses an identifier with %s (400, nothing stored)', async (_label, identifier, message) => {
    expect(identifierProblem(identifier, config)).toContain(message);
    const error = await appErrorOf(resources.create({ ...notes, identifier }, ADMIN));
    expect(error).toBeInstanceOf(ApiResourceValidationError);
    expect(error.status).toBe(400);
    expect((error as ApiResourceValidationError).fields.identifier).toContain(message);
    expect(await resources.get(identifier)).toBeUndefined();
  });

  it('accepts a urn identifier', async () => {
    expect(identifierProblem('urn:example:billing', config)).toBeUndefined();
    await expect(resources.create({ ...notes, identifier: 'urn:example:billing' }, ADMIN)).resolves.toMatchObject({ identifier: 'urn:example:billing' });
  });

  it.each([
    ['an OpenID Connect scope', [{ name: 'openid', description: 'x' }], 'OpenID Connect scope'],
    ['a management API scope', [{ name: 'admin:users:write', description: 'x' }], 'management API scope'],
    ['a duplicate', [{ name: 'a', description: 'x' }, { name: 'a', description: 'y' }], 'listed twice'],
    ['a space in a name', [{ name: 'read notes', description: 'x' }], 'no spaces'],
    ['no description', [{ name: 'notes:read', description: '' }], 'description'],
  ])('refuses scopes with %s', async (_label, scopes, message) => {
    const identifier = `https://scopes-${Math.random().toString(36).slice(2)}.example.com`;
    const error = await appErrorOf(resources.create({ ...notes, identifier, scopes }, ADMIN));
    expect(error.status).toBe(400);
    expect(error.code).toBe('resource.invalid');
    expect(error.message).toContain(message);
    expect(await resources.get(identifier)).toBeUndefined();
  });

  it('refuses a lifetime out of range and an unknown format, and updating a resource that does not exist', async () => {
    const identifier = 'https://ttl.example.com';
    expect((await appErrorOf(resources.create({ ...notes, identifier, accessTokenTtl: 5 }, ADMIN))).status).toBe(400);
    expect((await appErrorOf(resources.create({ ...notes, identifier, accessTokenTtl: 10 ** 7 }, ADMIN))).status).toBe(400);
    // @ts-expect-error: an unknown format, as a hostile caller would send it
    expect((await appErrorOf(resources.create({ ...notes, identifier, tokenFormat: 'paseto' }, ADMIN))).status).toBe(400);
    expect(await resources.get(identifier)).toBeUndefined();
    const missing = await appErrorOf(resources.update('https://missing.example.com', notes, ADMIN));
    expect(missing.status).toBe(404);
    expect(missing.code).toBe('resource.not_found');
  });
});
