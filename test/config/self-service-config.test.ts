import { describe, expect, it } from '@jest/globals';

import { ConfigError, loadConfig } from '../../src/config/config.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

/** SIGN_UP and PASSWORD_RESET: defaults per environment, and refusals. */

const base = { COOKIE_KEYS: TEST_COOKIE_KEY, ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS };
const production = { ...base, NODE_ENV: 'production', ISSUER: 'https://id.example.com', SMTP_URL: 'smtp://mail.example.com', MAIL_FROM: 'id@example.com' };

describe('self-service settings', () => {
  it('sign-up is closed in production and open only for the development demo on loopback', () => {
    expect(loadConfig(production).signUp.mode).toBe('closed');
    expect(loadConfig({ ...base, NODE_ENV: 'development' }).signUp.mode).toBe('open');
    expect(loadConfig({ ...base, NODE_ENV: 'development', ISSUER: 'https://id.example.com' }).signUp.mode).toBe('closed');
    expect(loadConfig({ ...base, NODE_ENV: 'test' }).signUp.mode).toBe('closed');
    expect(loadConfig({ ...production, SIGN_UP: 'invite' }).signUp.mode).toBe('invite');
    expect(() => loadConfig({ ...production, SIGN_UP: 'everyone' })).toThrow(ConfigError);
  });

  it('password reset is on by default, with its limits and the no-account mail', () => {
    expect(loadConfig(production).passwordReset).toEqual({ enabled: true, ttlSeconds: 1800, grantTtlSeconds: 600, perIp: 10, perAddressPerHour: 5, noAccountMail: true });
    expect(loadConfig({ ...production, PASSWORD_RESET: 'false', PASSWORD_RESET_NO_ACCOUNT_MAIL: 'no' }).passwordReset).toMatchObject({ enabled: false, noAccountMail: false });
    expect(loadConfig({ ...production, SIGN_UP_ADDRESS_LIMIT: '3' }).signUp).toMatchObject({ perAddressPerHour: 3, codeTtlSeconds: 900 });
    expect(() => loadConfig({ ...production, PASSWORD_RESET_IP_LIMIT: '0' })).toThrow(ConfigError);
  });
});
