import { describe, expect, it } from '@jest/globals';

import { ConfigError, loadConfig } from '../../src/config/config.js';
import type { DevSecrets, Env } from '../../src/config/config.js';
import { outboxSettingsFrom } from '../../src/mail/outbox.service.js';

const DEV_SECRETS: DevSecrets = {
  cookieKeys: ['dev-cookie-key-0123456789abcdefghijklmnop'],
  encryptionKeys: [{ id: 'dev1', key: Buffer.alloc(32, 1) }],
};
const load = (env: Env) => loadConfig({ NODE_ENV: 'test', ...env }, DEV_SECRETS);

describe('mail outbox settings', () => {
  it('defaults: a day of retries, 30 attempts, back-off capped at 15 minutes, a 5-second poll, 7 days kept', () => {
    expect(load({}).mail.outbox).toEqual({
      retryMaxAgeSeconds: 86_400,
      maxAttempts: 30,
      retryMaxDelaySeconds: 900,
      workerIntervalSeconds: 5,
      sentRetentionDays: 7,
    });
  });

  it('reads MAIL_* and turns them into the outbox settings in milliseconds', () => {
    const config = load({ MAIL_RETRY_MAX_AGE: '3600', MAIL_MAX_ATTEMPTS: '5', MAIL_RETRY_MAX_DELAY: '60', MAIL_WORKER_INTERVAL: '2', MAIL_SENT_RETENTION_DAYS: '1' });
    expect(outboxSettingsFrom(config.mail.outbox)).toEqual({
      retryMaxAgeMs: 3_600_000,
      maxAttempts: 5,
      retryMaxDelayMs: 60_000,
      pollIntervalMs: 2000,
      retentionMs: 86_400_000,
    });
  });

  it.each([
    ['MAIL_RETRY_MAX_AGE', '10'],
    ['MAIL_MAX_ATTEMPTS', '0'],
    ['MAIL_RETRY_MAX_DELAY', 'soon'],
    ['MAIL_WORKER_INTERVAL', '0'],
    ['MAIL_SENT_RETENTION_DAYS', '-1'],
  ])('refuses %s=%s, naming the setting', (name, value) => {
    expect(() => load({ [name]: value })).toThrow(ConfigError);
    expect(() => load({ [name]: value })).toThrow(name);
  });
});
