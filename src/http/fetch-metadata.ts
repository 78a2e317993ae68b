import type { Middleware } from 'koa';

import { AppError } from './app-error.js';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Defence in depth beside the CSRF tokens: a state-changing request to our own pages must come
 * from one of our pages. Checked before anything reads the body, so a refused request does nothing.
 *
 * - `Sec-Fetch-Site` (Fetch Metadata Request Headers, W3C) present: it must be `same-origin`.
 *   Browsers set it and a page cannot forge it; `same-site` (a sibling subdomain) and `none`
 *   are refused too.
 * - absent (an older browser, or not a browser): an `Origin` (RFC 6454 §7) naming another
 *   origin than the issuer's is refused.
 *
 * NOTE: our pages send `Referrer-Policy: no-referrer`, and with that policy the Fetch standard
 * ("serializing a request origin") makes a browser send `Origin: null` even on a same-origin
 * form POST. So `Origin: null` is not refused by itself; a browser that sends it also sends
 * Sec-Fetch-Site, which decides. A request with neither header is left to the CSRF token.
 *
 * Only for `prefixes` (our pages): the provider's endpoints are called cross-origin by design
 * (token, revocation, registration), and the management API authenticates with bearer tokens,
 * which a browser never attaches by itself.
 */
export function refuseCrossSiteWrites({ issuer, prefixes }: { issuer: string; prefixes: readonly string[] }): Middleware {
  const issuerOrigin = new URL(issuer).origin;
  const lowered = prefixes.map((prefix) => prefix.toLowerCase());
  // NOTE: lower-cased because @koa/router matches paths case-insensitively by default:
  // `/ADMIN/clients` reaches the same handler as `/admin/clients`.
  const guarded = (path: string) => {
    const p = safeDecode(path).toLowerCase();
    return lowered.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
  };
  return async function checkFetchSite(ctx, next) {
    if (UNSAFE_METHODS.has(ctx.method) && guarded(ctx.path)) {
      const site = ctx.get('sec-fetch-site');
      const origin = ctx.get('origin');
      const crossSite = site !== '' ? site.toLowerCase() !== 'same-origin' : origin !== '' && origin !== 'null' && origin !== issuerOrigin;
      if (crossSite) {
        // The error handler logs the refusal (status and code) and renders the 403 page.
        throw new AppError('request.cross_site');
      }
    }
    await next();
  };
}

/** Percent-decoded when possible, so that an encoded letter cannot slip past the prefix check. */
function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
