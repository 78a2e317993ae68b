import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * CSRF tokens for the interaction forms, bound to one interaction: HMAC(key, uid). The uid
 * is random and known only to the browser that holds that interaction's cookie (the
 * provider checks the cookie on every step), so a page elsewhere cannot forge a valid token
 * for the victim's interaction, and a token from one interaction is useless in another.
 */
export interface CsrfTokens {
  issue(uid: string): string;
  verify(uid: string, token: unknown): boolean;
}

export function createCsrfTokens(key: string): CsrfTokens {
  const issue = (uid: string) => createHmac('sha256', key).update(`interaction-csrf:${uid}`).digest('base64url');
  return {
    issue,
    verify(uid, token) {
      if (typeof token !== 'string' || token.length === 0 || token.length > 128) return false;
      const expected = Buffer.from(issue(uid));
      const given = Buffer.from(token);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
