import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';

import { createClientModel } from '../../src/clients/client.model.js';
import { createClientService } from '../../src/clients/client.service.js';
import type { ClientService, NewClientInput } from '../../src/clients/client.service.js';
import { createSecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { AppError } from '../../src/http/app-error.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const KEYS = [{ id: 'main', key: randomBytes(32) }];

async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError');
}

interface RawClient {
  _id: string;
  name: string;
  metadata: string;
  secretSealed: string | null;
  public: boolean;
}

describe('client service', () => {
  let connection: Connection;
  let collection: mongo.Collection<RawClient>;
  let clients: ClientService;

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('clients'), logger);
    if (!connection.db) throw new Error('no database');
    const Client = createClientModel(connection);
    await Client.createIndexes();
    clients = createClientService({ Client, secretBox: createSecretBox(KEYS) });
    collection = connection.db.collection<RawClient>('clients');
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  describe('confidential client', () => {
    const input: NewClientInput = {
      name: '  Web App  ',
      redirectUris: ['https://app.example.com/callback', 'http://127.0.0.1:8080/cb'],
      postLogoutRedirectUris: ['https://app.example.com/'],
    };

    it('gets a base64url secret of at least 43 characters, shown once at creation', async () => {
      const created = await clients.create(input);
      expect(created.clientSecret).toMatch(/^[A-Za-z0-9_-]{43,}$/);
      expect(created).toMatchObject({
        name: 'Web App',
        public: false,
        redirectUris: input.redirectUris,
        postLogoutRedirectUris: input.postLogoutRedirectUris,
        grantTypes: ['authorization_code', 'refresh_token'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      expect(created.clientId).toMatch(/^[A-Za-z0-9_-]{16,}$/);

      const secret = created.clientSecret ?? '';
      const got = await clients.get(created.clientId);
      expect(got).toBeDefined();
      expect(got).not.toHaveProperty('clientSecret');
      expect(JSON.stringify(got)).not.toContain(secret);
      const listed = await clients.list();
      expect(listed.some((c) => c.clientId === created.clientId)).toBe(true);
      expect(JSON.stringify(listed)).not.toContain(secret);
      for (const view of listed) expect(view).not.toHaveProperty('clientSecret');
    });

    it('every client gets its own secret and id', async () => {
      const a = await clients.create(input);
      const b = await clients.create(input);
      expect(a.clientId).not.toBe(b.clientId);
      expect(a.clientSecret).not.toBe(b.clientSecret);
    });

    it('the stored document holds no plaintext secret, and the sealed one opens only with the right key and client', async () => {
      const created = await clients.create(input);
      const secret = created.clientSecret ?? '';
      const doc = await collection.findOne({ _id: created.clientId });
      expect(doc).not.toBeNull();
      expect(JSON.stringify(doc)).not.toContain(secret);
      expect(JSON.parse(doc?.metadata ?? '{}')).not.toHaveProperty('client_secret');
      const sealed = doc?.secretSealed ?? '';
      expect(sealed).toMatch(/^v1\.main\./);

      expect(createSecretBox(KEYS).open(sealed, `client_secret:${created.clientId}`)).toBe(secret);
      expect(() => createSecretBox([{ id: 'main', key: randomBytes(32) }]).open(sealed, `client_secret:${created.clientId}`)).toThrow(
        /failed authentication/,
      );
      expect(() => createSecretBox(KEYS).open(sealed, 'client_secret:another-client')).toThrow(/failed authentication/);
    });

    it('find() (the provider’s ClientStore) returns the metadata with client_secret', async () => {
      const created = await clients.create(input);
      const metadata = await clients.find(created.clientId);
      expect(metadata).toStrictEqual({
        client_id: created.clientId,
        client_name: 'Web App',
        client_secret: created.clientSecret,
        application_type: 'web',
        redirect_uris: input.redirectUris,
        post_logout_redirect_uris: input.postLogoutRedirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      });
    });

    it('a secret sealed under a rotated-out key still opens when the old key is configured second', async () => {
      const created = await clients.create(input);
      const rotated = createClientService({
        Client: createClientModel(connection),
        secretBox: createSecretBox([{ id: 'next', key: randomBytes(32) }, ...KEYS]),
      });
      expect((await rotated.find(created.clientId))?.client_secret).toBe(created.clientSecret);
    });
  });

  describe('public client', () => {
    it('uses token_endpoint_auth_method none and has no secret anywhere', async () => {
      const created = await clients.create({ name: 'SPA', redirectUris: ['https://spa.example.com/cb'], public: true });
      expect(created.clientSecret).toBeUndefined();
      expect(created.public).toBe(true);
      expect(created.tokenEndpointAuthMethod).toBe('none');
      const metadata = await clients.find(created.clientId);
      expect(metadata?.token_endpoint_auth_method).toBe('none');
      expect(metadata).not.toHaveProperty('client_secret');
      expect(metadata?.application_type).toBe('web');
      const doc = await collection.findOne({ _id: created.clientId });
      expect(doc?.secretSealed ?? null).toBeNull();
      expect(doc?.public).toBe(true);
    });

    it('a native app (private-use scheme redirect) gets application_type native', async () => {
      const created = await clients.create({
        name: 'Mobile',
        redirectUris: ['com.example.mobile:/oauth2redirect', 'http://127.0.0.1/cb'],
        public: true,
      });
      expect((await clients.find(created.clientId))?.application_type).toBe('native');
    });

    it('a public client with loopback redirects only stays a web application', async () => {
      const created = await clients.create({ name: 'CLI', redirectUris: ['http://127.0.0.1:7777/cb'], public: true });
      expect((await clients.find(created.clientId))?.application_type).toBe('web');
    });
  });

  describe('validation', () => {
    it.each([
      ['an http redirect to a remote host', { redirectUris: ['http://evil.example.com/cb'] }, /must use https/],
      ['a redirect with a fragment', { redirectUris: ['https://app.example.com/cb#x'] }, /fragment/],
      ['a relative redirect', { redirectUris: ['/cb'] }, /absolute/],
      ['a javascript: redirect', { redirectUris: ['javascript:alert(1)'] }, /forbidden scheme/],
      ['a private-use scheme for a confidential client', { redirectUris: ['com.example.app:/cb'] }, /public \(native\)/],
      ['a private-use scheme without a dot', { redirectUris: ['myapp:/cb'], public: true }, /reversed domain name/],
      ['a bad post-logout URI', { postLogoutRedirectUris: ['http://evil.example.com/'] }, /^post-logout redirect URI "/],
    ] as [string, Partial<NewClientInput>, RegExp][])('refuses %s with 400', async (_what, override, message) => {
      const before = await collection.countDocuments();
      const err = await appErrorOf(clients.create({ name: 'Bad', redirectUris: ['https://ok.example.com/cb'], ...override }));
      expect(err.status).toBe(400);
      expect(err.code).toBe('client.invalid_redirect_uri');
      expect(err.message).toMatch(message);
      expect(await collection.countDocuments()).toBe(before);
    });

    it.each([
      ['no redirect URI', { redirectUris: [] }, /^redirectUris: /],
      ['an empty name', { name: '   ' }, /^name: /],
      ['a name with NUL', { name: 'A\u0000B' }, /^name: /],
      ['a bad client id', { clientId: 'short' }, /^clientId: /],
    ] as [string, Partial<NewClientInput>, RegExp][])('refuses %s with 400 client.invalid', async (_what, override, message) => {
      const err = await appErrorOf(clients.create({ name: 'Ok', redirectUris: ['https://ok.example.com/cb'], ...override }));
      expect(err.status).toBe(400);
      expect(err.code).toBe('client.invalid');
      expect(err.message).toMatch(message);
    });
  });

  it('a duplicate clientId gets 409, and the first client is untouched', async () => {
    const clientId = `seeded-${randomBytes(6).toString('hex')}`;
    const first = await clients.create({ name: 'First', redirectUris: ['https://first.example.com/cb'], clientId });
    const err = await appErrorOf(clients.create({ name: 'Second', redirectUris: ['https://second.example.com/cb'], clientId }));
    expect(err.status).toBe(409);
    expect(err.code).toBe('client.exists');
    const metadata = await clients.find(clientId);
    expect(metadata?.client_name).toBe('First');
    expect(metadata?.client_secret).toBe(first.clientSecret);
  });

  it('remove() deletes the client: get and find no longer see it, a second remove reports false', async () => {
    const created = await clients.create({ name: 'Doomed', redirectUris: ['https://doomed.example.com/cb'] });
    expect(await clients.remove(created.clientId)).toBe(true);
    expect(await clients.get(created.clientId)).toBeUndefined();
    expect(await clients.find(created.clientId)).toBeUndefined();
    expect(await collection.countDocuments({ _id: created.clientId })).toBe(0);
    expect(await clients.remove(created.clientId)).toBe(false);
  });

  it('get and find of an unknown client are undefined', async () => {
    expect(await clients.get('no-such-client')).toBeUndefined();
    expect(await clients.find('no-such-client')).toBeUndefined();
  });
});
