import { describe, expect, it } from '@jest/globals';

import { RedirectUriError, classifyRedirectUri } from '../../src/clients/redirect-uri.js';
import type { RedirectUriKind } from '../../src/clients/redirect-uri.js';

type Row = [uri: string, publicClient: boolean, expected: RedirectUriKind];

const accepted: Row[] = [
  ['https://app.example.com/callback', false, 'https'],
  ['https://app.example.com/callback?x=1', true, 'https'],
  ['https://app.example.com:8443/cb', false, 'https'],
  ['http://127.0.0.1:8080/callback', false, 'loopback'],
  ['http://127.0.0.1/callback', true, 'loopback'],
  ['http://localhost/callback', false, 'loopback'],
  ['http://localhost:3001/cb', true, 'loopback'],
  ['http://[::1]/callback', false, 'loopback'],
  ['http://[::1]:9000/callback', true, 'loopback'],
  // RFC 8252 §7.1: private-use scheme as a reversed domain name, public (native) clients only.
  ['com.example.app:/cb', true, 'private-use'],
  ['com.example.app:/oauth2redirect', true, 'private-use'],
];

type Refused = [uri: string, publicClient: boolean, message: RegExp];

const refused: Refused[] = [
  ['http://example.com/callback', false, /must use https/],
  ['http://example.com/callback', true, /must use https/],
  // Looks like loopback but is a DNS name anyone can register.
  ['http://127.0.0.1.example.com/cb', false, /must use https/],
  ['http://localhost.example.com/cb', false, /must use https/],
  ['https://app.example.com/callback#frag', false, /fragment/],
  ['https://app.example.com/callback#', false, /fragment/],
  ['http://127.0.0.1/cb#x', true, /fragment/],
  // The URL parser would percent-encode or drop these, but the raw string is what is stored.
  ['https://app.example.com/cb\u0000', false, /control or direction characters/],
  ['https://app.example.com/c\u001bb', false, /control or direction characters/],
  ['https://app.example.com/cb\u007f', false, /control or direction characters/],
  ['https://app.example.com/a b', false, /spaces/],
  ['\thttps://app.example.com/cb', false, /control/],
  ['https://app.example.com/\u202ebc/', false, /direction/],
  ['/callback', false, /not an absolute URI/],
  ['callback', true, /not an absolute URI/],
  ['//app.example.com/cb', false, /not an absolute URI/],
  ['', false, /not an absolute URI/],
  ['https://user:pass@app.example.com/cb', false, /credentials/],
  ['https://user@app.example.com/cb', false, /credentials/],
  ['http://user:pass@127.0.0.1/cb', true, /credentials/],
  ['javascript:alert(1)', false, /forbidden scheme/],
  ['javascript:alert(1)', true, /forbidden scheme/],
  ['data:text/html,<script>alert(1)</script>', true, /forbidden scheme/],
  ['file:///etc/passwd', true, /forbidden scheme/],
  ['vbscript:msgbox', true, /forbidden scheme/],
  // Private-use schemes: never for confidential clients, and must contain a dot.
  ['com.example.app:/cb', false, /only for public \(native\) clients/],
  ['myapp:/cb', true, /reversed domain name/],
  ['myapp:/cb', false, /only for public/],
];

describe('classifyRedirectUri', () => {
  it.each(accepted)('accepts %s (public client: %s) as %s', (uri, publicClient, expected) => {
    expect(classifyRedirectUri(uri, { publicClient })).toBe(expected);
  });

  it.each(refused)('refuses %s (public client: %s)', (uri, publicClient, message) => {
    let caught: unknown;
    try {
      classifyRedirectUri(uri, { publicClient });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RedirectUriError);
    expect((caught as Error).message).toMatch(message);
  });

  it('refuses a URI longer than 2000 characters', () => {
    const uri = `https://app.example.com/${'a'.repeat(2000)}`;
    expect(() => classifyRedirectUri(uri, { publicClient: false })).toThrow(/too long/);
  });

  it('accepts a URI of exactly 2000 characters', () => {
    const prefix = 'https://app.example.com/';
    const uri = prefix + 'a'.repeat(2000 - prefix.length);
    expect(uri).toHaveLength(2000);
    expect(classifyRedirectUri(uri, { publicClient: false })).toBe('https');
  });
});
