/**
 * Redirect URI rules for registration (stricter than the provider's own checks):
 * - absolute, no fragment (RFC 6749 §3.1.2);
 * - no wildcards: the provider compares redirect URIs by exact string (RFC 9700 §4.1.3), so a
 *   `*` could only ever be a mistake, or a pattern someone expects to be honoured;
 * - https, except http on a loopback host (RFC 8252 §7.3; `localhost` too, for development);
 * - private-use schemes (`com.example.app:/cb`, RFC 8252 §7.1) only for native public clients,
 *   and the scheme must look like a reversed domain name (contain a dot).
 */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'about:', 'blob:']);
const MAX_LENGTH = 2000;

export type RedirectUriKind = 'https' | 'loopback' | 'private-use';

export class RedirectUriError extends Error {
  override name = 'RedirectUriError';

  /**
   * @param uri the refused URI (shortened when it is too long to quote)
   * @param problem what is wrong with it, as a phrase that reads after the URI ("must not contain a fragment")
   */
  constructor(
    readonly uri: string,
    readonly problem: string,
  ) {
    super(`redirect URI "${uri}" ${problem}`);
  }
}

export function classifyRedirectUri(raw: string, options: { publicClient: boolean }): RedirectUriKind {
  if (raw.length > MAX_LENGTH) {
    throw new RedirectUriError(`${raw.slice(0, 40)}…`, `is too long (${MAX_LENGTH} characters at most)`);
  }
  // NOTE: the WHATWG URL parser drops or percent-encodes control characters and spaces, so a URI
  // "with" them parses; but the raw string is what gets stored and compared. RFC 3986 §2 allows
  // neither, and bidirectional overrides only serve to make a URI read as another one.
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  if (/[\u0000-\u0020\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(raw)) {
    throw new RedirectUriError(raw.replace(/[^\x21-\x7e]/g, '?'), 'must not contain spaces, control or direction characters');
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RedirectUriError(raw, 'is not an absolute URI');
  }
  if (raw.includes('#')) throw new RedirectUriError(raw, 'must not contain a fragment');
  if (raw.includes('*')) throw new RedirectUriError(raw, 'must not contain wildcards (*): redirect URIs are compared exactly');
  if (url.username || url.password) throw new RedirectUriError(raw, 'must not contain credentials');
  if (url.protocol === 'https:') return 'https';
  if (url.protocol === 'http:') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return 'loopback';
    throw new RedirectUriError(raw, 'must use https (http is allowed only for 127.0.0.1, localhost and [::1])');
  }
  if (FORBIDDEN_SCHEMES.has(url.protocol)) throw new RedirectUriError(raw, 'uses a forbidden scheme');
  if (!options.publicClient) {
    throw new RedirectUriError(raw, 'uses a private-use scheme: these are allowed only for public (native) clients');
  }
  if (!/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol)) {
    throw new RedirectUriError(
      raw,
      'uses a private-use scheme that is not a reversed domain name such as com.example.app (RFC 8252 §7.1)',
    );
  }
  return 'private-use';
}

/**
 * OpenID Connect Back-Channel Logout 1.0 §2.2: `backchannel_logout_uri` is an absolute URI
 * without a fragment, which the server itself POSTs to. The same rules as a web redirect URI:
 * https, or http on a loopback host where `loopbackHttp` allows it (development, tests). No
 * private-use schemes (nothing to POST to) and no credentials (they would be sent with every token).
 */
export function checkBackchannelLogoutUri(raw: string, options: { loopbackHttp: boolean }): void {
  if (raw.length > MAX_LENGTH) throw new RedirectUriError(`${raw.slice(0, 40)}…`, `is too long (${MAX_LENGTH} characters at most)`);
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  if (/[\u0000-\u0020\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(raw)) {
    throw new RedirectUriError(raw.replace(/[^\x21-\x7e]/g, '?'), 'must not contain spaces, control or direction characters');
  }
  const url = URL.parse(raw);
  if (!url) throw new RedirectUriError(raw, 'is not an absolute URI');
  if (raw.includes('#')) throw new RedirectUriError(raw, 'must not contain a fragment');
  if (url.username || url.password) throw new RedirectUriError(raw, 'must not contain credentials');
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) {
    if (options.loopbackHttp) return;
    throw new RedirectUriError(raw, 'must use https');
  }
  throw new RedirectUriError(raw, options.loopbackHttp ? 'must use https (http is allowed only for 127.0.0.1, localhost and [::1])' : 'must use https');
}
