import { createHash, randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Connection, mongo } from 'mongoose';

import { AUDIT_COLLECTION, createAuditService } from '../../src/audit/audit.service.js';
import type { AdminAuthority } from '../../src/clients/admin-authority.js';
import { MANAGEMENT_SCOPES, fullAuthority, scopedAuthority } from '../../src/clients/admin-authority.js';
import type { AuditService } from '../../src/audit/audit.service.js';
import { createClientModel } from '../../src/clients/client.model.js';
import {
  ClientValidationError,
  SECRET_ROTATIONS_COLLECTION,
  ScopeNotHeldError,
  clientInputSchema,
  createClientService,
} from '../../src/clients/client.service.js';
import type { ClientInput, ClientService, NewClientInput } from '../../src/clients/client.service.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { createSecretBox } from '../../src/crypto/secret-box.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createMigrationRunner } from '../../src/db/migration-runner.js';
import { createLogger } from '../../src/logging/logger.js';
import { testDatabaseUri } from '../support/database.js';
import { TEST_COOKIE_KEY } from '../support/test-server.js';
import { appErrorOf } from '../support/app-error.js';
import { createTestClock } from '../support/clock.js';

const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
const KEYS = [{ id: 'main', key: randomBytes(32) }];
const GRACE_SECONDS = 600;
/** Test setup acts as the command line would: with every power. */
const SETUP = fullAuthority({ type: 'system', label: 'test setup' });

async function validationErrorOf(promise: Promise<unknown>): Promise<ClientValidationError> {
  const err = await appErrorOf(promise);
  expect(err).toBeInstanceOf(ClientValidationError);
  expect(err.status).toBe(400);
  expect(err.code).toBe('client.invalid');
  return err as ClientValidationError;
}

interface RawClient {
  _id: string;
  name: string;
  metadata: string;
  secretSealed: string | null;
  previousSecretSealed?: string | null;
  previousSecretExpiresAt?: Date | null;
  public: boolean;
}

/** A valid confidential web client; tests override single fields. */
const WEB: ClientInput = {
  name: 'Web App',
  redirectUris: ['https://app.example.com/callback'],
  postLogoutRedirectUris: ['https://app.example.com/'],
  grantTypes: ['authorization_code', 'refresh_token'],
  applicationType: 'web',
  tokenEndpointAuthMethod: 'client_secret_basic',
  scopes: ['openid', 'email'],
  requireMfa: false,
  firstParty: false,
};

/** An EC P-256 public key (RFC 7517 appendix A.1). */
const PUBLIC_JWK = {
  kty: 'EC',
  crv: 'P-256',
  x: 'MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4',
  y: '4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM',
  use: 'sig',
  kid: '1',
};

describe('client service', () => {
  let connection: Connection;
  let db: mongo.Db;
  let collection: mongo.Collection<RawClient>;
  let clients: ClientService;
  let audit: AuditService;
  let config: Config;
  const clock = createTestClock(Date.now());

  beforeAll(async () => {
    connection = await connectDatabase(testDatabaseUri('clients'), logger);
    if (!connection.db) throw new Error('no database');
    db = connection.db;
    config = loadConfig({
      NODE_ENV: 'test',
      MONGODB_URI: 'mongodb://unused/',
      COOKIE_KEYS: TEST_COOKIE_KEY,
      ENCRYPTION_KEYS: `main:${KEYS[0]!.key.toString('base64url')}`,
      CLIENT_SECRET_GRACE_PERIOD: String(GRACE_SECONDS),
    });
    audit = createAuditService({ db, logger, retentionDays: 1 });
    clients = createClientService({ Client: createClientModel(connection), secretBox: createSecretBox(KEYS), audit, config, db, clock });
    await clients.ensureIndexes();
    collection = db.collection<RawClient>('clients');
  });

  afterAll(async () => {
    await connection?.db?.dropDatabase();
    await connection?.close();
  });

  describe('confidential client (the CLI’s and seed’s input)', () => {
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
        responseTypes: ['code'],
        applicationType: 'web',
        tokenEndpointAuthMethod: 'client_secret_basic',
        scopes: ['openid', 'offline_access', 'email', 'profile'],
        requireMfa: false,
        firstParty: false,
        dynamic: false,
        hasJwks: false,
      });
      // Letters and digits only: an id starting with '-' reads as an option on a command line.
      expect(created.clientId).toMatch(/^[A-Za-z0-9]{22}$/);
      expect(created.createdAt).toBeInstanceOf(Date);
      expect(created.updatedAt).toBeInstanceOf(Date);

      const secret = created.clientSecret ?? '';
      const got = await clients.get(created.clientId);
      expect(got).toBeDefined();
      expect(got).not.toHaveProperty('clientSecret');
      expect(JSON.stringify(got)).not.toContain(secret);
      const listed = await clients.list({ search: created.clientId });
      expect(listed.clients.map((c) => c.clientId)).toEqual([created.clientId]);
      expect(JSON.stringify(listed)).not.toContain(secret);
      for (const view of listed.clients) expect(view).not.toHaveProperty('clientSecret');
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
        scope: 'openid offline_access email profile',
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

  describe('public client (the CLI’s and seed’s input)', () => {
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

  describe('the full input (console and management API)', () => {
    it('is a plain zod object whose fields describe themselves', () => {
      expect(Object.keys(clientInputSchema.shape).sort()).toEqual(
        [
          'name',
          'logoUri',
          'redirectUris',
          'postLogoutRedirectUris',
          'backchannelLogoutUri',
          'backchannelLogoutSessionRequired',
          'grantTypes',
          'applicationType',
          'tokenEndpointAuthMethod',
          'jwksUri',
          'jwks',
          'scopes',
          'skipPkce',
          'requireMfa',
          'firstParty',
          'allowedResources',
          'defaultResource',
          'accessTokenTtl',
          'idTokenTtl',
          'refreshTokenTtl',
        ].sort(),
      );
      for (const field of Object.values(clientInputSchema.shape)) expect(field.description).toBeTruthy();
    });

    it('stores every field as provider metadata, flags and overrides included', async () => {
      const created = await clients.create({
        ...WEB,
        name: 'Everything',
        logoUri: 'https://app.example.com/logo.png',
        tokenEndpointAuthMethod: 'client_secret_post',
        scopes: ['openid', 'profile', 'admin:clients:read'],
        requireMfa: true,
        firstParty: true,
        accessTokenTtl: 300,
        idTokenTtl: 600,
        refreshTokenTtl: 3600,
      }, SETUP);
      expect(created.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const { client_secret: secret, ...metadata } = (await clients.find(created.clientId)) ?? {};
      expect(secret).toBe(created.clientSecret);
      expect(metadata).toStrictEqual({
        client_id: created.clientId,
        client_name: 'Everything',
        logo_uri: 'https://app.example.com/logo.png',
        application_type: 'web',
        redirect_uris: ['https://app.example.com/callback'],
        post_logout_redirect_uris: ['https://app.example.com/'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
        scope: 'openid profile admin:clients:read',
        require_mfa: true,
        first_party: true,
        access_token_ttl: 300,
        id_token_ttl: 600,
        refresh_token_ttl: 3600,
      });
      expect(created).toMatchObject({
        logoUri: 'https://app.example.com/logo.png',
        scopes: ['openid', 'profile', 'admin:clients:read'],
        requireMfa: true,
        firstParty: true,
        accessTokenTtl: 300,
        idTokenTtl: 600,
        refreshTokenTtl: 3600,
      });
    });

    it('a client_credentials-only client needs no redirect URI and has no response types', async () => {
      const created = await clients.create({
        name: 'Backend job',
        redirectUris: [],
        grantTypes: ['client_credentials'],
        scopes: ['admin:users:read'],
      }, SETUP);
      expect(created).toMatchObject({ redirectUris: [], responseTypes: [], grantTypes: ['client_credentials'], public: false });
      expect(created.clientSecret).toBeDefined();
      expect((await clients.find(created.clientId))?.response_types).toEqual([]);
    });

    it('a private_key_jwt client has keys and no secret', async () => {
      const created = await clients.create({
        ...WEB,
        name: 'Signed assertions',
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwks: { keys: [PUBLIC_JWK] },
      });
      expect(created.clientSecret).toBeUndefined();
      expect(created).toMatchObject({ public: false, hasJwks: true, tokenEndpointAuthMethod: 'private_key_jwt' });
      const metadata = await clients.find(created.clientId);
      expect(metadata?.jwks).toEqual({ keys: [PUBLIC_JWK] });
      expect(metadata).not.toHaveProperty('client_secret');

      const byUri = await clients.create({
        ...WEB,
        name: 'Signed by URI',
        tokenEndpointAuthMethod: 'private_key_jwt',
        jwksUri: 'https://app.example.com/jwks.json',
      });
      expect(byUri).toMatchObject({ jwksUri: 'https://app.example.com/jwks.json', hasJwks: false });
    });

    it('a native public app may use a private-use scheme', async () => {
      const created = await clients.create({
        ...WEB,
        name: 'Phone',
        applicationType: 'native',
        tokenEndpointAuthMethod: 'none',
        redirectUris: ['com.example.phone:/cb', 'http://127.0.0.1/cb'],
        postLogoutRedirectUris: [],
      });
      expect(created).toMatchObject({ public: true, applicationType: 'native' });
      expect(created.clientSecret).toBeUndefined();
    });
  });

  describe('validation: one message per field', () => {
    const refusals: [string, Partial<ClientInput>, Record<string, string | RegExp>][] = [
      ['an empty name', { name: '   ' }, { name: 'must not be empty' }],
      ['a name with a control character', { name: 'A\u0000B' }, { name: 'must not contain control characters' }],
      ['a name over 100 characters', { name: 'x'.repeat(101) }, { name: /100/ }],
      ['an http logo on a remote host', { logoUri: 'http://cdn.example.com/logo.png' }, { logoUri: /must be an https URL/ }],
      ['a redirect URI with a fragment', { redirectUris: ['https://x.example.com/cb#frag'] }, { redirectUris: 'https://x.example.com/cb#frag: must not contain a fragment' }],
      ['a wildcard host', { redirectUris: ['https://*.example.com/cb'] }, { redirectUris: /^https:\/\/\*\.example\.com\/cb: must not contain wildcards/ }],
      ['a wildcard path', { redirectUris: ['https://app.example.com/*'] }, { redirectUris: /wildcards/ }],
      ['http on a remote host', { redirectUris: ['http://app.example.com/cb'] }, { redirectUris: /^http:\/\/app\.example\.com\/cb: must use https/ }],
      ['a relative redirect URI', { redirectUris: ['/cb'] }, { redirectUris: '/cb: is not an absolute URI' }],
      ['a javascript: redirect URI', { redirectUris: ['javascript:alert(1)'] }, { redirectUris: /forbidden scheme/ }],
      ['credentials in a redirect URI', { redirectUris: ['https://u:p@app.example.com/cb'] }, { redirectUris: /credentials/ }],
      ['a private-use scheme on a confidential client', { redirectUris: ['com.example.app:/cb'] }, { redirectUris: /only for public \(native\) clients/ }],
      [
        'a private-use scheme on a public web client',
        { tokenEndpointAuthMethod: 'none', redirectUris: ['com.example.app:/cb'] },
        { redirectUris: /applicationType native/ },
      ],
      [
        'https on a loopback host for a native app',
        { tokenEndpointAuthMethod: 'none', applicationType: 'native', redirectUris: ['https://127.0.0.1/cb'] },
        { redirectUris: /native application uses http, not https, on a loopback host/ },
      ],
      ['a bad post-logout redirect URI', { postLogoutRedirectUris: ['http://app.example.com/'] }, { postLogoutRedirectUris: /must use https/ }],
      ['no redirect URI with authorization_code', { redirectUris: [] }, { redirectUris: /at least one redirect URI is required/ }],
      ['21 redirect URIs', { redirectUris: Array.from({ length: 21 }, (_, i) => `https://app.example.com/${i}`) }, { redirectUris: /at most 20/ }],
      [
        'redirect URIs on a client_credentials-only client',
        { grantTypes: ['client_credentials'], postLogoutRedirectUris: [] },
        { redirectUris: /only with the authorization_code grant/ },
      ],
      ['no grant type', { grantTypes: [] }, { grantTypes: /at least one grant type/ }],
      ['an unknown grant type', { grantTypes: ['implicit' as 'authorization_code'] }, { grantTypes: /item 1: / }],
      ['refresh_token without authorization_code', { grantTypes: ['refresh_token'], redirectUris: [], postLogoutRedirectUris: [] }, { grantTypes: /refresh_token needs authorization_code/ }],
      [
        'client_credentials on a public client',
        { tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code', 'client_credentials'] },
        { grantTypes: /public client .* cannot use client_credentials/ },
      ],
      ['private_key_jwt without keys', { tokenEndpointAuthMethod: 'private_key_jwt' }, { jwks: /give jwksUri or jwks/ }],
      [
        'private_key_jwt with both jwksUri and jwks',
        { tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: 'https://app.example.com/jwks', jwks: { keys: [PUBLIC_JWK] } },
        { jwksUri: 'give either jwksUri or jwks, not both' },
      ],
      [
        'a private key in jwks',
        { tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [{ ...PUBLIC_JWK, d: 'secret-part' }] } },
        { jwks: /keys: must contain public keys only/ },
      ],
      [
        'a symmetric key in jwks',
        { tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } },
        { jwks: /public keys only/ },
      ],
      ['keys on a secret client', { jwks: { keys: [PUBLIC_JWK] } }, { jwks: 'is used only with tokenEndpointAuthMethod private_key_jwt' }],
      ['an http jwksUri', { tokenEndpointAuthMethod: 'private_key_jwt', jwksUri: 'http://app.example.com/jwks' }, { jwksUri: 'must be an https URL' }],
      ['an unknown scope', { scopes: ['openid', 'payments'] }, { scopes: /^unknown scope "payments" \(known: openid, offline_access, email, profile, admin:clients:read/ }],
      ['no scope', { scopes: [] }, { scopes: 'at least one scope is required' }],
      ['a zero access token TTL', { accessTokenTtl: 0 }, { accessTokenTtl: 'must be a positive number of seconds' }],
      ['a negative ID token TTL', { idTokenTtl: -5 }, { idTokenTtl: 'must be a positive number of seconds' }],
      ['a fractional TTL', { accessTokenTtl: 1.5 }, { accessTokenTtl: 'must be a whole number of seconds' }],
      ['an access token TTL over a day', { accessTokenTtl: 86_401 }, { accessTokenTtl: 'must be at most 86400 seconds' }],
      ['an ID token TTL over a day', { idTokenTtl: 90_000 }, { idTokenTtl: 'must be at most 86400 seconds' }],
      ['a refresh token TTL past the absolute cap', { refreshTokenTtl: 91 * 24 * 60 * 60 }, { refreshTokenTtl: /at most 7776000 seconds/ }],
    ];

    it.each(refusals)('refuses %s, naming the field, and stores nothing', async (_what, override, fields) => {
      const before = await collection.countDocuments();
      const err = await validationErrorOf(clients.create({ ...WEB, ...override }));
      expect(Object.keys(err.fields)).toEqual(Object.keys(fields));
      for (const [field, message] of Object.entries(fields)) {
        if (typeof message === 'string') expect(err.fields[field]).toBe(message);
        else expect(err.fields[field]).toMatch(message);
      }
      expect(err.message).toMatch(/^invalid client: /);
      expect(await collection.countDocuments()).toBe(before);
    });

    it('reports every refused field at once, and summarises them in the message', async () => {
      const err = await validationErrorOf(
        clients.create({ ...WEB, name: '', redirectUris: ['https://a.example.com/cb#x', 'http://b.example.com/cb'], scopes: ['nope'] }),
      );
      expect(Object.keys(err.fields).sort()).toEqual(['name', 'redirectUris', 'scopes']);
      expect(err.fields.redirectUris).toBe(
        'https://a.example.com/cb#x: must not contain a fragment; http://b.example.com/cb: must use https (http is allowed only for 127.0.0.1, localhost and [::1])',
      );
      expect(err.message).toMatch(/^invalid client: name: must not be empty; redirect URIs: https:\/\/a\.example\.com\/cb#x: must not contain a fragment; .*scopes: unknown scope "nope"/);
    });

    it.each([
      ['an http redirect to a remote host', { redirectUris: ['http://evil.example.com/cb'] }, 'redirectUris', /must use https/],
      ['a redirect with a fragment', { redirectUris: ['https://app.example.com/cb#x'] }, 'redirectUris', /fragment/],
      ['a private-use scheme for a confidential client', { redirectUris: ['com.example.app:/cb'] }, 'redirectUris', /public \(native\)/],
      ['a private-use scheme without a dot', { redirectUris: ['myapp:/cb'], public: true }, 'redirectUris', /reversed domain name/],
      ['a bad post-logout URI', { postLogoutRedirectUris: ['http://evil.example.com/'] }, 'postLogoutRedirectUris', /must use https/],
      ['no redirect URI', { redirectUris: [] }, 'redirectUris', /at least one/],
      ['an empty name', { name: '   ' }, 'name', /must not be empty/],
      ['a bad client id', { clientId: 'short' }, 'clientId', /8-64/],
    ] as [string, Partial<NewClientInput>, string, RegExp][])(
      'the CLI’s input: refuses %s the same way',
      async (_what, override, field, message) => {
        const before = await collection.countDocuments();
        const err = await validationErrorOf(clients.create({ name: 'Bad', redirectUris: ['https://ok.example.com/cb'], public: false, ...override }));
        expect(err.fields[field]).toMatch(message);
        expect(await collection.countDocuments()).toBe(before);
      },
    );

    it('the summary names post-logout URIs so that a one-line error says which list is wrong', async () => {
      const err = await validationErrorOf(
        clients.create({ name: 'Bad', redirectUris: ['https://ok.example.com/cb'], postLogoutRedirectUris: ['http://x.example.com/'], public: false }),
      );
      expect(err.message).toMatch(/^invalid client: post-logout redirect URIs: http:\/\/x\.example\.com\/: must use https/);
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

  it('refuses a chosen clientId that starts with "-" or "_", so that it never reads as a command-line option', async () => {
    for (const clientId of ['-wxyz12345', '_wxyz12345']) {
      const err = await validationErrorOf(clients.create({ name: 'Dash', redirectUris: ['https://dash.example.com/cb'], clientId }));
      expect(err.message).toMatch(/client id: must be 8-64 of .*starting with a letter or digit/);
      expect(await clients.get(clientId)).toBeUndefined();
    }
  });

  describe('update', () => {
    it('replaces the editable fields and keeps the secret', async () => {
      const created = await clients.create({ ...WEB, requireMfa: true, accessTokenTtl: 120 });
      const updated = await clients.update(created.clientId, {
        ...WEB,
        name: '  Renamed  ',
        redirectUris: ['https://new.example.com/cb'],
        postLogoutRedirectUris: [],
        scopes: ['openid'],
      });
      expect(updated.clientSecret).toBeUndefined();
      expect(updated).toMatchObject({
        clientId: created.clientId,
        name: 'Renamed',
        redirectUris: ['https://new.example.com/cb'],
        postLogoutRedirectUris: [],
        scopes: ['openid'],
        // Full replacement: what the input leaves out goes back to its default.
        requireMfa: false,
        accessTokenTtl: undefined,
      });
      const metadata = await clients.find(created.clientId);
      expect(metadata?.client_secret).toBe(created.clientSecret);
      expect(metadata).not.toHaveProperty('require_mfa');
      expect(metadata).not.toHaveProperty('access_token_ttl');
      expect(metadata?.redirect_uris).toEqual(['https://new.example.com/cb']);
      expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());
    });

    it('switching to none drops the secret; switching back makes a new one, returned once', async () => {
      const created = await clients.create(WEB);
      const toPublic = await clients.update(created.clientId, { ...WEB, tokenEndpointAuthMethod: 'none' });
      expect(toPublic).toMatchObject({ public: true, tokenEndpointAuthMethod: 'none' });
      expect(toPublic.clientSecret).toBeUndefined();
      expect(await clients.find(created.clientId)).not.toHaveProperty('client_secret');
      expect((await collection.findOne({ _id: created.clientId }))?.secretSealed ?? null).toBeNull();

      const back = await clients.update(created.clientId, { ...WEB, tokenEndpointAuthMethod: 'client_secret_post' });
      expect(back.public).toBe(false);
      expect(back.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(back.clientSecret).not.toBe(created.clientSecret);
      expect((await clients.find(created.clientId))?.client_secret).toBe(back.clientSecret);
    });

    it('switching to private_key_jwt drops the secret and any previous one', async () => {
      const created = await clients.create(WEB);
      await clients.rotateSecret(created.clientId);
      expect(await clients.previousSecret(created.clientId)).toBe(created.clientSecret);
      await clients.update(created.clientId, { ...WEB, tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [PUBLIC_JWK] } });
      expect(await clients.find(created.clientId)).not.toHaveProperty('client_secret');
      expect(await clients.previousSecret(created.clientId)).toBeUndefined();
      expect(await clients.get(created.clientId)).toMatchObject({ hasJwks: true, previousSecretExpiresAt: undefined });
    });

    it('keeps metadata it does not manage (a dynamically registered client’s own fields)', async () => {
      const clientId = `dyn-${randomBytes(6).toString('hex')}`;
      await clients.upsert(clientId, {
        client_id: clientId,
        client_name: 'Registered',
        client_secret: 'registered-secret-0123456789',
        client_uri: 'https://registered.example.com/',
        redirect_uris: ['https://registered.example.com/cb'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        dynamically_registered: true,
      });
      expect((await clients.get(clientId))?.dynamic).toBe(true);
      await clients.update(clientId, { ...WEB, name: 'Registered, reviewed', grantTypes: ['authorization_code'] });
      const metadata = await clients.find(clientId);
      expect(metadata).toMatchObject({
        client_name: 'Registered, reviewed',
        client_uri: 'https://registered.example.com/',
        dynamically_registered: true,
        client_secret: 'registered-secret-0123456789',
      });
      expect((await clients.get(clientId))?.dynamic).toBe(true);
    });

    it('refuses bad input with field messages and changes nothing; an unknown client is 404', async () => {
      const created = await clients.create(WEB);
      const before = await collection.findOne({ _id: created.clientId });
      const err = await validationErrorOf(clients.update(created.clientId, { ...WEB, redirectUris: ['https://x.example.com/cb#frag'] }));
      expect(err.fields).toEqual({ redirectUris: 'https://x.example.com/cb#frag: must not contain a fragment' });
      expect(await collection.findOne({ _id: created.clientId })).toEqual(before);

      const missing = await appErrorOf(clients.update('no-such-client', WEB));
      expect(missing).toMatchObject({ status: 404, code: 'client.not_found' });
    });
  });

  describe('list', () => {
    const prefix = `lst${randomBytes(3).toString('hex')}`;
    const names = [`${prefix} beta`, `${prefix} Alpha`, `${prefix} alpha`, `${prefix} gamma`, `${prefix} alpha`, `${prefix} a.c`];
    const made: { name: string; id: string }[] = [];

    beforeAll(async () => {
      for (const name of names) {
        const created = await clients.create({ ...WEB, name });
        made.push({ name, id: created.clientId });
      }
    });

    const byNameThenId = (a: { name: string; id: string }, b: { name: string; id: string }) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

    it('pages through the matches in name, then id, order, with the total on every page', async () => {
      const expected = [...made].sort(byNameThenId).map((c) => c.id);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await clients.list({ search: prefix, limit: 4, cursor });
        expect(page.total).toBe(names.length);
        expect(page.clients.length).toBeLessThanOrEqual(4);
        seen.push(...page.clients.map((c) => c.clientId));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor);
      expect(pages).toBe(2);
      expect(seen).toEqual(expected);
    });

    it('a page that ends exactly at the last match has no next cursor', async () => {
      const page = await clients.list({ search: prefix, limit: names.length });
      expect(page.clients).toHaveLength(names.length);
      expect(page.nextCursor).toBeUndefined();
    });

    it('searches names case-insensitively, and client ids', async () => {
      const upper = await clients.list({ search: `${prefix.toUpperCase()} ALPHA` });
      expect(upper.total).toBe(3);
      expect(upper.clients.map((c) => c.name).sort()).toEqual([`${prefix} Alpha`, `${prefix} alpha`, `${prefix} alpha`].sort());

      const target = made[0]!;
      const byId = await clients.list({ search: target.id.slice(2, 14) });
      expect(byId.clients.map((c) => c.clientId)).toContain(target.id);
    });

    it('treats the search as text, not as a regular expression', async () => {
      const dot = await clients.list({ search: `${prefix} a.c` });
      expect(dot.clients.map((c) => c.name)).toEqual([`${prefix} a.c`]);
      expect((await clients.list({ search: `${prefix}.*` })).total).toBe(0);
      expect((await clients.list({ search: '(' })).total).toBe(0);
    });

    it('refuses a cursor it did not make', async () => {
      const err = await appErrorOf(clients.list({ cursor: 'not-a-cursor' }));
      expect(err).toMatchObject({ status: 400, code: 'client.invalid_cursor' });
    });
  });

  describe('rotateSecret', () => {
    it('makes a new secret; the previous one is valid until the grace period ends', async () => {
      const created = await clients.create(WEB);
      const rotated = await clients.rotateSecret(created.clientId);
      expect(rotated.clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rotated.clientSecret).not.toBe(created.clientSecret);
      expect(rotated.previousSecretExpiresAt.getTime()).toBe(clock.nowMs() + GRACE_SECONDS * 1000);

      expect((await clients.find(created.clientId))?.client_secret).toBe(rotated.clientSecret);
      expect(await clients.previousSecret(created.clientId)).toBe(created.clientSecret);
      const view = await clients.get(created.clientId);
      expect(view?.secretRotatedAt?.getTime()).toBe(clock.nowMs());
      expect(view?.previousSecretExpiresAt?.getTime()).toBe(rotated.previousSecretExpiresAt.getTime());
      expect(JSON.stringify(view)).not.toContain(created.clientSecret);

      const start = clock.nowMs();
      try {
        clock.set(start + GRACE_SECONDS * 1000 - 1);
        expect(await clients.previousSecret(created.clientId)).toBe(created.clientSecret);
        clock.set(start + GRACE_SECONDS * 1000);
        expect(await clients.previousSecret(created.clientId)).toBeUndefined();
        expect((await clients.get(created.clientId))?.previousSecretExpiresAt).toBeUndefined();
      } finally {
        clock.set(start);
      }
    });

    it('seals the previous secret under its own context, never in plaintext', async () => {
      const created = await clients.create(WEB);
      await clients.rotateSecret(created.clientId);
      const doc = await collection.findOne({ _id: created.clientId });
      expect(JSON.stringify(doc)).not.toContain(created.clientSecret);
      const sealed = doc?.previousSecretSealed ?? '';
      expect(createSecretBox(KEYS).open(sealed, `client_secret_previous:${created.clientId}`)).toBe(created.clientSecret);
      expect(() => createSecretBox(KEYS).open(sealed, `client_secret:${created.clientId}`)).toThrow(/failed authentication/);
    });

    it('a second rotation keeps only the secret it replaced', async () => {
      const created = await clients.create(WEB);
      const first = await clients.rotateSecret(created.clientId);
      const second = await clients.rotateSecret(created.clientId);
      expect(await clients.previousSecret(created.clientId)).toBe(first.clientSecret);
      expect((await clients.find(created.clientId))?.client_secret).toBe(second.clientSecret);
    });

    it('concurrent rotations form a chain: each one replaced a different secret, and the losers get 409', async () => {
      const created = await clients.create(WEB);
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => clients.rotateSecret(created.clientId)));
      const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.clientSecret] : []));
      const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      expect(won.length).toBeGreaterThanOrEqual(1);
      for (const reason of lost) expect(reason).toMatchObject({ status: 409, code: 'client.rotation_conflict' });
      // The last rotation written is current, and it replaced the rotation before it, never the
      // original secret a second time (which is what racing rotations used to do).
      const current = (await clients.find(created.clientId))?.client_secret;
      expect(won).toContain(current);
      const previous = await clients.previousSecret(created.clientId);
      if (won.length === 1) expect(previous).toBe(created.clientSecret);
      else expect(won.filter((secret) => secret !== current)).toContain(previous);
      // Every rotation handed out is on record, and only those.
      const recorded = await db.collection('audit_events').countDocuments({ action: 'client.secret_rotated', 'target.id': created.clientId });
      expect(recorded).toBe(won.length);
    });

    it('a rotation of a secret that another rotation has just claimed gets 409 and changes nothing', async () => {
      // The middle of a race, held still: another node has claimed the current secret (the claim
      // is named after the sealed secret it replaces) and is about to write its own.
      const created = await clients.create(WEB);
      const sealed = (await collection.findOne({ _id: created.clientId }))?.secretSealed ?? '';
      const replaced = createHash('sha256').update(sealed).digest('base64url').slice(0, 22);
      await db
        .collection<{ _id: string; clientId: string; expiresAt: Date }>(SECRET_ROTATIONS_COLLECTION)
        .insertOne({ _id: `${created.clientId}:${replaced}`, clientId: created.clientId, expiresAt: new Date(clock.nowMs() + 60_000) });
      expect(await appErrorOf(clients.rotateSecret(created.clientId))).toMatchObject({ status: 409, code: 'client.rotation_conflict' });
      expect((await clients.find(created.clientId))?.client_secret).toBe(created.clientSecret);
      expect(await clients.previousSecret(created.clientId)).toBeUndefined();
      expect(await db.collection('audit_events').countDocuments({ action: 'client.secret_rotated', 'target.id': created.clientId })).toBe(0);
    });

    it('sweeps rotation claims after an hour', async () => {
      const created = await clients.create(WEB);
      await clients.rotateSecret(created.clientId);
      const claims = db.collection(SECRET_ROTATIONS_COLLECTION);
      expect(await claims.countDocuments({ clientId: created.clientId })).toBe(1);
      await clients.sweep(new Date(clock.nowMs() + 59 * 60 * 1000));
      expect(await claims.countDocuments({ clientId: created.clientId })).toBe(1);
      await clients.sweep(new Date(clock.nowMs() + 60 * 60 * 1000));
      expect(await claims.countDocuments({ clientId: created.clientId })).toBe(0);
    });

    it('refuses a client without a secret, and an unknown client', async () => {
      const publicClient = await clients.create({ ...WEB, tokenEndpointAuthMethod: 'none' });
      expect(await appErrorOf(clients.rotateSecret(publicClient.clientId))).toMatchObject({ status: 400, code: 'client.no_secret' });
      expect(await appErrorOf(clients.rotateSecret('no-such-client'))).toMatchObject({ status: 404, code: 'client.not_found' });
    });
  });

  describe('built-in clients', () => {
    it('cannot be taken, changed, rotated or deleted by admins (the server rewrites them at every start)', async () => {
      await clients.upsert('admin-console', { client_id: 'admin-console', client_name: 'Admin console', redirect_uris: ['https://id.example.com/admin/callback'], token_endpoint_auth_method: 'none' });
      await expect(clients.create({ name: 'Impostor', redirectUris: ['https://x.example.com/cb'], clientId: 'account-console' })).rejects.toMatchObject({ status: 409, code: 'client.built_in' });
      const input = { name: 'Changed', redirectUris: ['https://x.example.com/cb'], postLogoutRedirectUris: [], grantTypes: ['authorization_code' as const], applicationType: 'web' as const, tokenEndpointAuthMethod: 'none' as const, scopes: ['openid'], requireMfa: false, firstParty: false };
      await expect(clients.update('admin-console', input)).rejects.toMatchObject({ status: 409, code: 'client.built_in' });
      await expect(clients.rotateSecret('admin-console')).rejects.toMatchObject({ status: 409, code: 'client.built_in' });
      await expect(clients.remove('admin-console')).rejects.toMatchObject({ status: 409, code: 'client.built_in' });
      expect((await clients.find('admin-console'))?.client_name).toBe('Admin console');
    });

    it('are written by nodes starting together: concurrent first writes of one client all succeed, one record each', async () => {
      // Several rounds: which of the racing upserts collides is up to the database's scheduling.
      for (let round = 0; round < 10; round += 1) {
        const clientId = `built-in-race-${round}`;
        const writes = Array.from({ length: 16 }, (_, i) =>
          clients.upsert(clientId, { client_id: clientId, client_name: `Race ${i}`, redirect_uris: ['https://id.example.com/cb'], token_endpoint_auth_method: 'none' }),
        );
        const outcomes = await Promise.allSettled(writes);
        expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
        expect(await collection.countDocuments({ _id: clientId })).toBe(1);
        expect((await clients.find(clientId))?.client_name).toMatch(/^Race \d+$/);
      }
    });
  });

  describe('remove', () => {
    it('deletes the client: get and find no longer see it, a second remove reports false', async () => {
      const created = await clients.create({ name: 'Doomed', redirectUris: ['https://doomed.example.com/cb'], public: false });
      expect(await clients.remove(created.clientId)).toBe(true);
      expect(await clients.get(created.clientId)).toBeUndefined();
      expect(await clients.find(created.clientId)).toBeUndefined();
      expect(await collection.countDocuments({ _id: created.clientId })).toBe(0);
      expect(await clients.remove(created.clientId)).toBe(false);
    });

    it('deletes the client’s codes, tokens and grants (by field, and older records once migrated), and nobody else’s', async () => {
      // Ids with regex characters, and a neighbour that a careless regex would also match.
      const doomed = `doomed.client~${randomBytes(3).toString('hex')}`;
      const neighbour = doomed.replace('.', 'X');
      await clients.create({ name: 'Doomed', redirectUris: ['https://d.example.com/cb'], clientId: doomed, public: false });
      await clients.create({ name: 'Neighbour', redirectUris: ['https://n.example.com/cb'], clientId: neighbour, public: false });
      const future = new Date(Date.now() + 3_600_000);
      const record = (id: string, clientId: string, withField: boolean) => ({
        _id: id,
        payload: JSON.stringify({ jti: id, kind: 'AccessToken', clientId, accountId: 'acc-1' }),
        ...(withField ? { clientId } : {}),
        grantId: `grant-${id}`,
        expiresAt: future,
      });
      const collections = ['oidc_access_token', 'oidc_refresh_token', 'oidc_authorization_code', 'oidc_grant'];
      for (const name of collections) {
        await db.collection<{ _id: string }>(name).insertMany([
          record(`${name}-new`, doomed, true),
          record(`${name}-old`, doomed, false),
          record(`${name}-other`, neighbour, false),
        ]);
      }
      const session = { _id: `session-${doomed}`, payload: JSON.stringify({ accountId: 'acc-1', authorizations: { [doomed]: {} } }), expiresAt: future };
      await db.collection<{ _id: string }>('oidc_session').insertOne(session);
      // Records written before the adapter stored clientId get it from the migration (run at every start).
      await createMigrationRunner({ db, logger }).migrate();

      expect(await clients.remove(doomed)).toBe(true);
      for (const name of collections) {
        const left = (await db.collection(name).find({}, { projection: { _id: 1 } }).toArray()).map((d) => String(d._id));
        expect(left).toEqual([`${name}-other`]);
      }
      // Sessions belong to the person: the provider skips a client it cannot find.
      expect(await db.collection('oidc_session').countDocuments({ _id: session._id } as never)).toBe(1);
      expect(await clients.get(neighbour)).toBeDefined();
    });
  });

  describe('authority: nobody gives a client more than they hold', () => {
    const SERVICE: ClientInput = { name: 'Service', redirectUris: [], grantTypes: ['client_credentials'], scopes: ['admin:users:write'] };
    const actor = { type: 'client' as const, id: 'ci-client', label: 'CI' };
    /** A management API token's authority: admin:clients:write only (the route's scope). */
    const writer = scopedAuthority(actor, ['admin:clients:write']);
    const raw = (clientId: string) => collection.findOne({ _id: clientId });

    async function refusal(promise: Promise<unknown>, missing: string[]): Promise<void> {
      const err = await appErrorOf(promise);
      expect(err).toBeInstanceOf(ScopeNotHeldError);
      expect(err).toMatchObject({ status: 403, code: 'client.scope_not_held', missingScopes: missing });
    }

    it('without an authority (the default), creates ordinary clients only: management API scopes and first party are refused, nothing stored', async () => {
      const before = await collection.countDocuments();
      await refusal(clients.create({ ...SERVICE, name: 'No authority' }), ['admin:clients:grant', 'admin:users:write']);
      await refusal(clients.create({ ...WEB, name: 'No authority', firstParty: true }), ['admin:clients:grant']);
      expect(await collection.countDocuments()).toBe(before);
      const { events } = await audit.list({ action: 'client.created', outcome: 'failure' }, { limit: 2 });
      expect(events.map((e) => e.details?.missingScopes)).toEqual([['admin:clients:grant'], ['admin:clients:grant', 'admin:users:write']]);
      for (const event of events) expect(event).toMatchObject({ actor: { type: 'system' }, reason: 'scope_not_held', details: { name: 'No authority' } });
      expect((await clients.create({ ...WEB, name: 'Ordinary' })).clientId).toEqual(expect.any(String));
    });

    it('admin:clients:write alone cannot give management API scopes or first party, on create or update', async () => {
      const before = await collection.countDocuments();
      await refusal(clients.create(SERVICE, writer), ['admin:clients:grant', 'admin:users:write']);
      await refusal(clients.create({ ...WEB, firstParty: true }, writer), ['admin:clients:grant']);
      expect(await collection.countDocuments()).toBe(before);

      const own = await clients.create({ ...WEB, name: 'Own' }, writer);
      const stored = await raw(own.clientId);
      await refusal(clients.update(own.clientId, { ...WEB, scopes: ['openid', 'admin:audit:read'] }, writer), ['admin:clients:grant', 'admin:audit:read']);
      await refusal(clients.update(own.clientId, { ...WEB, firstParty: true }, writer), ['admin:clients:grant']);
      expect(await raw(own.clientId)).toEqual(stored);
      const { events } = await audit.list({ target: own.clientId, action: 'client.updated' }, { limit: 5 });
      expect(events.map((e) => [e.outcome, e.reason])).toEqual([
        ['failure', 'scope_not_held'],
        ['failure', 'scope_not_held'],
      ]);
      expect(events[0]).toMatchObject({ actor, target: { type: 'client', id: own.clientId, label: 'Own' } });
    });

    it('a client with powers the caller lacks cannot be changed, have its secret rotated or be deleted by it', async () => {
      const strong = await clients.create(SERVICE, SETUP);
      const firstParty = await clients.create({ ...WEB, firstParty: true }, SETUP);
      for (const [client, missing] of [
        [strong, ['admin:clients:grant', 'admin:users:write']],
        [firstParty, ['admin:clients:grant']],
      ] as const) {
        const stored = await raw(client.clientId);
        // Even a change that would take its powers away.
        await refusal(clients.update(client.clientId, { ...WEB, scopes: ['openid'] }, writer), [...missing]);
        await refusal(clients.rotateSecret(client.clientId, writer), [...missing]);
        await refusal(clients.remove(client.clientId, writer), [...missing]);
        expect(await raw(client.clientId)).toEqual(stored);
        expect(await clients.previousSecret(client.clientId)).toBeUndefined();
        expect(await db.collection(SECRET_ROTATIONS_COLLECTION).countDocuments({ clientId: client.clientId })).toBe(0);
      }
    });

    it('admin:clients:grant gives only scopes the caller holds, and reaches only clients within them', async () => {
      const granter = scopedAuthority(actor, ['admin:clients:write', 'admin:clients:grant', 'admin:audit:read', 'admin:clients:read']);
      const before = await collection.countDocuments();
      await refusal(clients.create({ ...SERVICE, scopes: ['admin:audit:read', 'admin:users:write'] }, granter), ['admin:users:write']);
      expect(await collection.countDocuments()).toBe(before);

      const made = await clients.create({ ...SERVICE, scopes: ['admin:audit:read'] }, granter);
      expect(made.scopes).toEqual(['admin:audit:read']);
      expect((await clients.update(made.clientId, { ...SERVICE, scopes: ['admin:clients:read', 'admin:audit:read'] }, granter)).scopes).toEqual([
        'admin:clients:read',
        'admin:audit:read',
      ]);
      expect((await clients.rotateSecret(made.clientId, granter)).clientSecret).toEqual(expect.any(String));
      expect(await clients.remove(made.clientId, granter)).toBe(true);

      const firstParty = await clients.create({ ...WEB, firstParty: true }, granter);
      expect(firstParty.firstParty).toBe(true);
      const strong = await clients.create(SERVICE, SETUP);
      await refusal(clients.rotateSecret(strong.clientId, granter), ['admin:users:write']);
    });

    it('every management API scope, or full authority (console, CLI), may do everything', async () => {
      const holder: AdminAuthority = scopedAuthority(actor, MANAGEMENT_SCOPES);
      for (const by of [holder, SETUP]) {
        const made = await clients.create({ ...SERVICE, scopes: [...MANAGEMENT_SCOPES], name: 'All' }, by);
        await clients.update(made.clientId, { ...WEB, firstParty: true }, by);
        await clients.rotateSecret(made.clientId, by);
        expect(await clients.remove(made.clientId, by)).toBe(true);
      }
    });
  });

  describe('audit', () => {
    it('records created, updated, secret_rotated and deleted with actor, target and changed field names, never a secret', async () => {
      const actor = { type: 'account' as const, id: 'admin-1', label: 'admin@example.com' };
      const by = fullAuthority(actor);
      const created = await clients.create({ ...WEB, name: 'Audited' }, by);
      const switched = await clients.update(created.clientId, { ...WEB, name: 'Audited', tokenEndpointAuthMethod: 'none' }, by);
      const back = await clients.update(created.clientId, { ...WEB, name: 'Audited too', redirectUris: ['https://other.example.com/cb'] }, by);
      const rotated = await clients.rotateSecret(created.clientId, by);
      expect(await clients.remove(created.clientId, by)).toBe(true);
      expect(switched.clientSecret).toBeUndefined();

      const { events } = await audit.list({ target: created.clientId }, { limit: 20 });
      const byAction = Object.fromEntries(events.map((e) => [e.action, e]));
      expect(events.map((e) => e.action).sort()).toEqual(
        ['client.created', 'client.deleted', 'client.secret_rotated', 'client.updated', 'client.updated'].sort(),
      );
      for (const event of events) {
        expect(event.outcome).toBe('success');
        expect(event.actor).toEqual(actor);
        expect(event.target?.type).toBe('client');
        expect(event.target?.id).toBe(created.clientId);
      }
      expect(byAction['client.created']?.target?.label).toBe('Audited');
      expect(byAction['client.created']?.details?.changed).toEqual(expect.arrayContaining(['name', 'redirectUris', 'tokenEndpointAuthMethod']));
      expect(byAction['client.secret_rotated']?.details).toEqual({ changed: ['clientSecret'] });
      expect(byAction['client.deleted']?.target?.label).toBe('Audited too');
      const updates = events.filter((e) => e.action === 'client.updated').map((e) => e.details?.changed);
      expect(updates).toEqual(
        expect.arrayContaining([
          ['tokenEndpointAuthMethod', 'clientSecret'],
          ['name', 'redirectUris', 'tokenEndpointAuthMethod', 'clientSecret'],
        ]),
      );

      // Not one secret in any stored audit document, however it is looked at.
      const raw = JSON.stringify(await db.collection(AUDIT_COLLECTION).find({}).toArray());
      for (const secret of [created.clientSecret, back.clientSecret, rotated.clientSecret]) {
        expect(secret).toBeTruthy();
        expect(raw).not.toContain(secret);
      }
    });

    it('an admin change without an actor is the system’s', async () => {
      const created = await clients.create({ ...WEB, name: 'By the system' });
      const { events } = await audit.list({ target: created.clientId, action: 'client.created' }, { limit: 1 });
      expect(events[0]?.actor).toEqual({ type: 'system' });
    });
  });

  it('get and find of an unknown client are undefined', async () => {
    expect(await clients.get('no-such-client')).toBeUndefined();
    expect(await clients.find('no-such-client')).toBeUndefined();
  });
});
