import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { defaults } from '../../config/defaults.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import type { DevSecrets, Env } from '../../src/config/config.js';
import { loadOrCreateDevSecrets } from '../../src/config/dev-secrets.js';
import { applyDefaultEnvironment } from '../../src/config/runtime.js';

const COOKIE_KEY = 'c'.repeat(32);
const ENCRYPTION_KEY = `k1:${randomBytes(32).toString('base64url')}`;
const DEV_SECRETS: DevSecrets = {
  cookieKeys: ['dev-cookie-key-0123456789abcdefghijklmnop'],
  encryptionKeys: [{ id: 'dev1', key: Buffer.alloc(32, 1) }],
};
const PRODUCTION: Env = {
  NODE_ENV: 'production',
  ISSUER: 'https://id.example.com',
  COOKIE_KEYS: COOKIE_KEY,
  ENCRYPTION_KEYS: ENCRYPTION_KEY,
  SMTP_URL: 'smtp://mail.example.com:587',
  MAIL_FROM: 'Identity <no-reply@example.com>',
};

/**
 * The ConfigError message loadConfig throws, or fails the test when it does not throw.
 * `null` means "no development secrets were generated".
 */
function configError(env: Env, devSecrets: DevSecrets | null = DEV_SECRETS): string {
  try {
    loadConfig(env, devSecrets ?? undefined);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('has working development defaults with only development secrets', () => {
    const config = loadConfig({}, DEV_SECRETS);
    expect(config.env).toBe('development');
    expect(config.port).toBe(defaults.port);
    expect(config.issuer).toBe(`http://localhost:${defaults.port}`);
    expect(config.mongodbUri).toBeUndefined();
    expect(config.cookieKeys).toEqual(DEV_SECRETS.cookieKeys);
    expect(config.encryptionKeys).toEqual(DEV_SECRETS.encryptionKeys);
    expect(config.trustProxy).toBe(false);
    expect(config.logLevel).toBe(defaults.logLevel);
    expect(config.dataDir).toBe(defaults.dataDir);
    expect(config.productName).toBe(defaults.productName);
    expect(config.seedDemo).toBe(true);
    expect(config.ttl).toEqual({
      accessToken: defaults.ttl.accessToken,
      authorizationCode: defaults.ttl.authorizationCode,
      idToken: defaults.ttl.idToken,
      refreshTokenIdle: defaults.ttl.refreshTokenIdle,
      refreshTokenAbsolute: defaults.ttl.refreshTokenAbsolute,
      session: defaults.ttl.session,
      sessionIdle: defaults.ttl.sessionIdle,
      interaction: defaults.ttl.interaction,
      grant: defaults.ttl.grant,
    });
    expect(config.formBodyLimit).toBe(defaults.formBodyLimit);
    expect(config.proxyHops).toBe(1);
    expect(config.ipLimits).toEqual(defaults.ipLimits);
    expect(config.emailCodeAddressLimits).toEqual(defaults.emailCodeAddressLimits);
    expect(config.adminSession).toEqual({ maxAgeSeconds: defaults.adminSession.maxAge, idleSeconds: defaults.adminSession.idle });
    expect(config.recentAuthMaxAgeSeconds).toBe(defaults.recentAuthMaxAge);
  });

  it('never runs a deployed build as development: without NODE_ENV, the compiled server is production, the sources development', () => {
    const compiled: NodeJS.ProcessEnv = {};
    applyDefaultEnvironment(compiled, 'file:///app/dist/src/main.js');
    expect(compiled.NODE_ENV).toBe('production');
    const sources: NodeJS.ProcessEnv = {};
    applyDefaultEnvironment(sources, 'file:///work/src/main.ts');
    expect(sources.NODE_ENV).toBe('development');
    // An explicit setting always wins.
    const told: NodeJS.ProcessEnv = { NODE_ENV: 'development' };
    applyDefaultEnvironment(told, 'file:///app/dist/src/main.js');
    expect(told.NODE_ENV).toBe('development');
    // And production without its settings refuses to start, instead of inventing development ones.
    expect(configError({ NODE_ENV: compiled.NODE_ENV }, null)).toMatch(/COOKIE_KEYS: required when NODE_ENV=production/);
  });

  it('seeds the demo user (with its published password) only for a loopback issuer', () => {
    expect(loadConfig({ ISSUER: 'http://127.0.0.1:3000' }, DEV_SECRETS).seedDemo).toBe(true);
    expect(loadConfig({ ISSUER: 'http://[::1]:3000' }, DEV_SECRETS).seedDemo).toBe(true);
    // Development on a reachable address: no demo user unless asked, and asking is refused.
    expect(loadConfig({ ISSUER: 'http://192.168.1.20:3000' }, DEV_SECRETS).seedDemo).toBe(false);
    expect(configError({ ISSUER: 'https://id.example.com', SEED_DEMO: 'true' })).toMatch(/SEED_DEMO: .*loopback ISSUER/);
    expect(configError({ ...PRODUCTION, SEED_DEMO: 'true' })).toMatch(/SEED_DEMO/);
  });

  it('refuses an idle session lifetime longer than the session itself', () => {
    expect(configError({ SESSION_TTL: '3600', SESSION_IDLE_TTL: '7200' })).toMatch(/SESSION_IDLE_TTL: must be at most SESSION_TTL/);
    expect(loadConfig({ SESSION_TTL: '7200', SESSION_IDLE_TTL: '3600' }, DEV_SECRETS).ttl).toMatchObject({ session: 7200, sessionIdle: 3600 });
  });

  it('does not seed demo data outside development unless asked', () => {
    expect(loadConfig({ NODE_ENV: 'test' }, DEV_SECRETS).seedDemo).toBe(false);
    expect(loadConfig({ NODE_ENV: 'test', SEED_DEMO: 'true' }, DEV_SECRETS).seedDemo).toBe(true);
    expect(loadConfig({ SEED_DEMO: 'no' }, DEV_SECRETS).seedDemo).toBe(false);
  });

  it('parses PORT and derives the development issuer from it', () => {
    const config = loadConfig({ PORT: '8080' }, DEV_SECRETS);
    expect(config.port).toBe(8080);
    expect(config.issuer).toBe('http://localhost:8080');
    expect(loadConfig({ PORT: '0' }, DEV_SECRETS).port).toBe(0);
  });

  it.each(['abc', '-1', '65536', '80.5'])('refuses PORT=%s naming PORT', (port) => {
    expect(configError({ PORT: port })).toMatch(/^\s*PORT: /m);
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ PORT: '', ISSUER: '', COOKIE_KEYS: '', LOG_LEVEL: '' }, DEV_SECRETS);
    expect(config.port).toBe(defaults.port);
    expect(config.cookieKeys).toEqual(DEV_SECRETS.cookieKeys);
  });

  it('takes ISSUER as given, without trailing slashes', () => {
    expect(loadConfig({ ISSUER: 'https://id.example.com/' }, DEV_SECRETS).issuer).toBe('https://id.example.com');
    expect(loadConfig({ ISSUER: 'https://id.example.com/tenant//' }, DEV_SECRETS).issuer).toBe(
      'https://id.example.com/tenant',
    );
    expect(loadConfig({ ISSUER: 'http://127.0.0.1:4000' }, DEV_SECRETS).issuer).toBe('http://127.0.0.1:4000');
  });

  it.each(['not a url', 'ftp://id.example.com', 'javascript:alert(1)'])('refuses ISSUER=%s naming ISSUER', (issuer) => {
    expect(configError({ ISSUER: issuer })).toMatch(/^\s*ISSUER: /m);
  });

  it.each([
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'verbose'],
    ['MONGODB_URI', 'postgres://localhost/db'],
    ['TRUST_PROXY', 'maybe'],
    ['ACCESS_TOKEN_TTL', '0'],
    ['ACCESS_TOKEN_TTL', 'one hour'],
    ['SESSION_TTL', '-5'],
    ['ENCRYPTION_KEYS', 'nocolon'],
    ['ENCRYPTION_KEYS', `k1:${randomBytes(16).toString('base64url')}`],
    ['ENCRYPTION_KEYS', `bad id!:${randomBytes(32).toString('base64url')}`],
  ])('names %s in the error for the bad value %j', (name, value) => {
    const message = configError({ [name]: value });
    expect(message).toMatch(new RegExp(`^\\s*${name}: `, 'm'));
  });

  it('names every bad setting at once', () => {
    const message = configError({ PORT: 'x', LOG_LEVEL: 'loud' });
    expect(message).toMatch(/^\s*PORT: /m);
    expect(message).toMatch(/^\s*LOG_LEVEL: /m);
  });

  it('does not echo a bad secret value in the error message', () => {
    const badCookie = 'short-but-secret-cookie';
    expect(configError({ COOKIE_KEYS: badCookie })).not.toContain(badCookie);
    const badKey = `k1:${randomBytes(16).toString('base64url')}`;
    expect(configError({ ENCRYPTION_KEYS: badKey })).not.toContain(badKey.slice(3));
  });

  it('accepts a valid production configuration', () => {
    const config = loadConfig(PRODUCTION);
    expect(config.env).toBe('production');
    expect(config.issuer).toBe('https://id.example.com');
    expect(config.cookieKeys).toEqual([COOKIE_KEY]);
    expect(config.encryptionKeys).toHaveLength(1);
    expect(config.encryptionKeys[0]?.id).toBe('k1');
    expect(config.encryptionKeys[0]?.key).toHaveLength(32);
    expect(config.seedDemo).toBe(false);
  });

  it.each(['COOKIE_KEYS', 'ENCRYPTION_KEYS', 'ISSUER', 'MAIL_FROM'])(
    'refuses production without %s, naming it, even with development secrets at hand',
    (name) => {
      const env = { ...PRODUCTION, [name]: undefined };
      const message = configError(env, DEV_SECRETS);
      expect(message).toMatch(new RegExp(`^\\s*${name}: required when NODE_ENV=production`, 'm'));
    },
  );

  it('refuses production without an SMTP server: sign-in codes must really be mailed', () => {
    expect(configError({ ...PRODUCTION, SMTP_URL: undefined })).toMatch(/^\s*SMTP_URL \(or SMTP_HOST\): required when NODE_ENV=production/m);
    expect(loadConfig({ ...PRODUCTION, SMTP_URL: undefined, SMTP_HOST: 'mail.example.com' }).mail.smtp).toEqual({
      host: 'mail.example.com',
      port: 587,
      secure: false,
      user: undefined,
      password: undefined,
    });
  });

  it('reads mail, email-code and MFA settings with safe defaults', () => {
    const config = loadConfig({}, DEV_SECRETS);
    expect(config.mail.smtp).toBeUndefined();
    expect(config.emailCode).toEqual({ ttlSeconds: 600, resendIntervalSeconds: 60, maxAttempts: 5, noAccountMail: false });
    expect(config.mfa).toEqual({ requiredForAdmins: true, emailFallback: true });
    const tuned = loadConfig(
      { SMTP_HOST: 'smtp.example.com', SMTP_SECURE: 'true', MFA_EMAIL_FALLBACK: 'false', EMAIL_CODE_TTL: '120' },
      DEV_SECRETS,
    );
    expect(tuned.mail.smtp).toMatchObject({ host: 'smtp.example.com', port: 465, secure: true });
    expect(tuned.mfa.emailFallback).toBe(false);
    expect(tuned.emailCode.ttlSeconds).toBe(120);
    expect(configError({ SMTP_URL: 'http://mail.example.com' })).toMatch(/^\s*SMTP_URL: must start with smtp:\/\//m);
  });

  it('names every missing production setting at once', () => {
    const message = configError({ NODE_ENV: 'production' });
    for (const name of ['COOKIE_KEYS', 'ENCRYPTION_KEYS', 'ISSUER']) {
      expect(message).toMatch(new RegExp(`^\\s*${name}: `, 'm'));
    }
  });

  it('refuses an http:// issuer in production', () => {
    expect(configError({ ...PRODUCTION, ISSUER: 'http://id.example.com' })).toMatch(/^\s*ISSUER: must be https:\/\//m);
  });

  it('uses development secrets only when the environment has no keys', () => {
    const fromDev = loadConfig({}, DEV_SECRETS);
    expect(fromDev.cookieKeys).toBe(DEV_SECRETS.cookieKeys);
    expect(fromDev.encryptionKeys).toBe(DEV_SECRETS.encryptionKeys);

    const fromEnv = loadConfig({ COOKIE_KEYS: COOKIE_KEY, ENCRYPTION_KEYS: ENCRYPTION_KEY }, DEV_SECRETS);
    expect(fromEnv.cookieKeys).toEqual([COOKIE_KEY]);
    expect(fromEnv.encryptionKeys[0]?.id).toBe('k1');
  });

  it('refuses to start without keys when there are no development secrets either', () => {
    expect(configError({}, null)).toMatch(/^\s*COOKIE_KEYS: not set/m);
    expect(configError({ COOKIE_KEYS: COOKIE_KEY }, null)).toMatch(/^\s*ENCRYPTION_KEYS: not set/m);
  });

  it('parses several cookie keys and encryption keys (rotation), first one first', () => {
    const second = `k0:${randomBytes(32).toString('base64url')}`;
    const config = loadConfig({
      COOKIE_KEYS: `${'n'.repeat(40)}, ${COOKIE_KEY}`,
      ENCRYPTION_KEYS: `${ENCRYPTION_KEY},${second}`,
    });
    expect(config.cookieKeys).toEqual(['n'.repeat(40), COOKIE_KEY]);
    expect(config.encryptionKeys.map((k) => k.id)).toEqual(['k1', 'k0']);
  });

  it('refuses a cookie key shorter than 32 characters, also when another key is long enough', () => {
    expect(configError({ COOKIE_KEYS: 'x'.repeat(31) })).toMatch(/^\s*COOKIE_KEYS: .*at least 32 characters/m);
    expect(configError({ COOKIE_KEYS: `${COOKIE_KEY},short` })).toMatch(/^\s*COOKIE_KEYS: /m);
    expect(loadConfig({ COOKIE_KEYS: 'x'.repeat(32) }, DEV_SECRETS).cookieKeys).toEqual(['x'.repeat(32)]);
  });

  it('refuses REFRESH_TOKEN_ABSOLUTE_TTL below REFRESH_TOKEN_IDLE_TTL', () => {
    expect(configError({ REFRESH_TOKEN_IDLE_TTL: '7200', REFRESH_TOKEN_ABSOLUTE_TTL: '3600' })).toMatch(
      /^\s*REFRESH_TOKEN_ABSOLUTE_TTL: must be at least REFRESH_TOKEN_IDLE_TTL/m,
    );
    // Only the absolute cap set, below the default idle period: refused too.
    expect(configError({ REFRESH_TOKEN_ABSOLUTE_TTL: '3600' })).toMatch(/^\s*REFRESH_TOKEN_ABSOLUTE_TTL: /m);
    const equal = loadConfig({ REFRESH_TOKEN_IDLE_TTL: '3600', REFRESH_TOKEN_ABSOLUTE_TTL: '3600' }, DEV_SECRETS);
    expect(equal.ttl.refreshTokenIdle).toBe(3600);
    expect(equal.ttl.refreshTokenAbsolute).toBe(3600);
  });

  it('parses TTLs as whole seconds', () => {
    const config = loadConfig({ ACCESS_TOKEN_TTL: '300', AUTHORIZATION_CODE_TTL: '30', GRANT_TTL: '86400' }, DEV_SECRETS);
    expect(config.ttl.accessToken).toBe(300);
    expect(config.ttl.authorizationCode).toBe(30);
    expect(config.ttl.grant).toBe(86400);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('parses TRUST_PROXY=%s as %s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }, DEV_SECRETS).trustProxy).toBe(expected);
  });

  it('leaves TRUST_PROXY off when unset or empty', () => {
    expect(loadConfig({}, DEV_SECRETS).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '' }, DEV_SECRETS).trustProxy).toBe(false);
  });

  it('refuses TRUST_PROXY values it does not understand, rather than guessing', () => {
    for (const value of ['TRUE', 'on', '2']) {
      expect(configError({ TRUST_PROXY: value })).toMatch(/^\s*TRUST_PROXY: /m);
    }
  });
});

describe('loadOrCreateDevSecrets', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'oidc-dev-secrets-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the file once with mode 0600 and returns the same keys on the next call', async () => {
    const dataDir = path.join(dir, 'nested', 'data');
    const first = await loadOrCreateDevSecrets(dataDir);
    const file = path.join(dataDir, 'dev-secrets.json');
    const info = await stat(file);
    expect(info.mode & 0o777).toBe(0o600);
    const written = await readFile(file, 'utf8');

    expect(first.cookieKeys).toHaveLength(1);
    expect(first.cookieKeys[0]?.length).toBeGreaterThanOrEqual(32);
    expect(first.encryptionKeys).toHaveLength(1);
    expect(first.encryptionKeys[0]?.key).toHaveLength(32);

    const second = await loadOrCreateDevSecrets(dataDir);
    expect(second).toEqual(first);
    // Not rewritten on the second call.
    expect(await readFile(file, 'utf8')).toBe(written);
    expect((await stat(file)).mtimeMs).toBe(info.mtimeMs);
  });

  it('the generated secrets pass loadConfig', async () => {
    const secrets = await loadOrCreateDevSecrets(path.join(dir, 'for-config'));
    const config = loadConfig({}, secrets);
    expect(config.cookieKeys).toEqual(secrets.cookieKeys);
    expect(config.encryptionKeys).toEqual(secrets.encryptionKeys);
  });

  it('starts racing on an empty directory all end with the same keys and leave one file', async () => {
    // Staggered by fractions of a millisecond, so that some callers read while the winner is
    // still writing (a plain 'wx' write let them read a half-written file now and then).
    for (let round = 0; round < 150; round += 1) {
      const dataDir = path.join(dir, `race-${round}`);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, k) =>
          new Promise((resolve) => setTimeout(resolve, (k * (round % 7)) / 10)).then(() => loadOrCreateDevSecrets(dataDir)),
        ),
      );
      for (const result of results) expect(result).toEqual(results[0]);
      expect(await readdir(dataDir)).toEqual(['dev-secrets.json']);
    }
  });

  it('different data directories get different keys', async () => {
    const a = await loadOrCreateDevSecrets(path.join(dir, 'a'));
    const b = await loadOrCreateDevSecrets(path.join(dir, 'b'));
    expect(a.cookieKeys).not.toEqual(b.cookieKeys);
    expect(a.encryptionKeys[0]?.key.equals(b.encryptionKeys[0]?.key ?? Buffer.alloc(0))).toBe(false);
  });
});
