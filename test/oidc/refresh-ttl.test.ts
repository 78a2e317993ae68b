import { describe, expect, it } from '@jest/globals';

import { defaults } from '../../config/defaults.js';
import type { Ttl } from '../../src/config/config.js';
import { refreshTokenTtl } from '../../src/oidc/provider.js';

const DAY = 24 * 60 * 60;
const ttl: Ttl = { ...defaults.ttl, refreshTokenIdle: 14 * DAY, refreshTokenAbsolute: 90 * DAY };
const NOW = 1_750_000_000;

describe('refreshTokenTtl', () => {
  it('gives the full idle period to a fresh token (chain started now)', () => {
    expect(refreshTokenTtl(ttl, { iat: NOW }, NOW)).toBe(14 * DAY);
    expect(refreshTokenTtl(ttl, { iiat: NOW, iat: NOW }, NOW)).toBe(14 * DAY);
  });

  it('gives the full idle period to a rotated token while the chain is young', () => {
    // Rotated a month into the chain: idle period still fits under the 90-day cap.
    expect(refreshTokenTtl(ttl, { iiat: NOW - 30 * DAY, iat: NOW }, NOW)).toBe(14 * DAY);
    // Exactly idle-period away from the cap: still the idle period.
    expect(refreshTokenTtl(ttl, { iiat: NOW - 76 * DAY, iat: NOW }, NOW)).toBe(14 * DAY);
  });

  it('caps a rotated token at the absolute lifetime counted from the original sign-in (iiat), not its own iat', () => {
    // 85 days into the chain: 5 days left, although this token was issued just now.
    expect(refreshTokenTtl(ttl, { iiat: NOW - 85 * DAY, iat: NOW }, NOW)).toBe(5 * DAY);
    // One hour before the cap.
    expect(refreshTokenTtl(ttl, { iiat: NOW - 90 * DAY + 3600, iat: NOW }, NOW)).toBe(3600);
  });

  it('uses iat when the token has no iiat (first token of a chain)', () => {
    expect(refreshTokenTtl(ttl, { iat: NOW - 85 * DAY }, NOW)).toBe(5 * DAY);
  });

  it('uses now when the token has neither iiat nor iat', () => {
    expect(refreshTokenTtl(ttl, {}, NOW)).toBe(14 * DAY);
    expect(refreshTokenTtl(ttl, { iiat: undefined, iat: undefined }, NOW)).toBe(14 * DAY);
  });

  it('never returns less than 1 second, even at or past the cap', () => {
    expect(refreshTokenTtl(ttl, { iiat: NOW - 90 * DAY, iat: NOW }, NOW)).toBe(1);
    expect(refreshTokenTtl(ttl, { iiat: NOW - 90 * DAY + 1, iat: NOW }, NOW)).toBe(1);
    expect(refreshTokenTtl(ttl, { iiat: NOW - 400 * DAY, iat: NOW }, NOW)).toBe(1);
  });

  it('follows configured TTLs rather than the defaults', () => {
    const short: Ttl = { ...ttl, refreshTokenIdle: 600, refreshTokenAbsolute: 3600 };
    expect(refreshTokenTtl(short, { iat: NOW }, NOW)).toBe(600);
    expect(refreshTokenTtl(short, { iiat: NOW - 3300, iat: NOW }, NOW)).toBe(300);
  });

  it('the lifetime of every rotation in a daily-used chain ends no later than the cap', () => {
    const iiat = NOW;
    for (let day = 0; day <= 95; day += 1) {
      const now = iiat + day * DAY;
      const lifetime = refreshTokenTtl(ttl, { iiat, iat: now }, now);
      expect(lifetime).toBeGreaterThanOrEqual(1);
      expect(lifetime).toBeLessThanOrEqual(ttl.refreshTokenIdle);
      if (now < iiat + ttl.refreshTokenAbsolute) expect(now + lifetime).toBeLessThanOrEqual(iiat + ttl.refreshTokenAbsolute);
    }
  });

  it('defaults the clock to the current time', () => {
    const now = Math.floor(Date.now() / 1000);
    expect(refreshTokenTtl(ttl, { iiat: now - 85 * DAY })).toBeGreaterThan(5 * DAY - 5);
    expect(refreshTokenTtl(ttl, { iiat: now - 85 * DAY })).toBeLessThanOrEqual(5 * DAY);
  });
});
