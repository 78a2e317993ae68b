/**
 * Redirect URI rules for registration (stricter than the provider's own checks):
 * - absolute, no fragment (RFC 6749 §3.1.2);
 * - https, except http on a loopback host (RFC 8252 §7.3; `localhost` too, for development);
 * - private-use schemes (`com.example.app:/cb`, RFC 8252 §7.1) only for native public clients,
 *   and the scheme must look like a reversed domain name (contain a dot).
 */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'about:', 'blob:']);

export type RedirectUriKind = 'https' | 'loopback' | 'private-use';

export class RedirectUriError extends Error {
  override name = 'RedirectUriError';
}

export function classifyRedirectUri(raw: string, options: { publicClient: boolean }): RedirectUriKind {
  if (raw.length > 2000) throw new RedirectUriError('redirect URI is too long (2000 characters at most)');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RedirectUriError(`redirect URI "${raw}" is not an absolute URI`);
  }
  if (raw.includes('#')) throw new RedirectUriError(`redirect URI "${raw}" must not contain a fragment`);
  if (url.username || url.password) throw new RedirectUriError(`redirect URI "${raw}" must not contain credentials`);
  if (url.protocol === 'https:') return 'https';
  if (url.protocol === 'http:') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return 'loopback';
    throw new RedirectUriError(`redirect URI "${raw}" must use https (http is allowed only for 127.0.0.1, localhost and [::1])`);
  }
  if (FORBIDDEN_SCHEMES.has(url.protocol)) throw new RedirectUriError(`redirect URI "${raw}" uses a forbidden scheme`);
  if (!options.publicClient) {
    throw new RedirectUriError(`redirect URI "${raw}": private-use schemes are allowed only for public (native) clients`);
  }
  if (!/^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(url.protocol)) {
    throw new RedirectUriError(
      `redirect URI "${raw}": a private-use scheme must be a reversed domain name such as com.example.app (RFC 8252 §7.1)`,
    );
  }
  return 'private-use';
}
