import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { Context, Middleware } from 'koa';

/**
 * Validates the JWT access tokens (RFC 9068) our authorization server issues for an API resource
 * (RFC 8707), and answers refusals the way RFC 6750 §3 says a resource server should.
 */

export interface AccessTokenOptions {
  /** The authorization server's issuer URL, exactly as its discovery document states it. */
  issuer: string;
  /** This API's resource identifier: the `aud` its tokens must carry. */
  audience: string;
  /** Named in WWW-Authenticate (RFC 6750 §3). */
  realm?: string;
  /** Allowed clock skew for exp/nbf/iat, in seconds. */
  clockToleranceSeconds?: number;
  /** Minimum time between two JWKS fetches caused by an unknown `kid` (jose's default: 30 s). */
  jwksCooldownMs?: number;
}

/** What a verified token tells the routes about the caller. */
export interface Caller {
  sub: string;
  clientId: string;
  scopes: string[];
  claims: JWTPayload;
}

export interface CallerState {
  caller: Caller;
}

// RFC 9068 §2.1 asks for asymmetric signatures; naming the algorithms also refuses `none` and
// HS256 (a token "signed" with the issuer's public key as an HMAC secret).
const ALGORITHMS = ['RS256', 'ES256'];
// RFC 9068 §2.2: claims every access token carries.
const REQUIRED_CLAIMS = ['iss', 'aud', 'exp', 'iat', 'sub', 'client_id', 'jti'];
// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

class BearerError extends Error {
  constructor(
    readonly status: 400 | 401 | 403,
    readonly error: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | undefined,
    readonly description: string,
    readonly scope?: string,
  ) {
    super(description);
  }
}

export function createAccessTokenMiddleware(options: AccessTokenOptions) {
  const realm = options.realm ?? options.audience;
  if (/["\\]/.test(realm)) throw new TypeError('realm must not contain quotes or backslashes');
  const getKey = createIssuerKeys(options);

  /** Verifies the bearer token and puts the caller in ctx.state; refuses with RFC 6750 errors. */
  const requireToken: Middleware<CallerState> = async function requireToken(ctx, next) {
    try {
      const token = extractToken(ctx);
      const { payload } = await jwtVerify(token, getKey, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ALGORITHMS,
        // RFC 9068 §4: `at+jwt` or `application/at+jwt` (jose compares media types case-insensitively
        // and drops the `application/` prefix); an ID token (`JWT`) or a typ-less token is refused.
        typ: 'at+jwt',
        requiredClaims: REQUIRED_CLAIMS,
        clockTolerance: options.clockToleranceSeconds ?? 5,
      });
      // A sender-constrained token (DPoP, RFC 9449 §7; mTLS, RFC 8705) must not be usable by
      // whoever merely holds it: this API only speaks Bearer, so it refuses them.
      if (payload.cnf !== undefined) throw new BearerError(401, 'invalid_token', 'the token is sender-constrained');
      if (typeof payload.sub !== 'string' || typeof payload.client_id !== 'string') {
        throw new BearerError(401, 'invalid_token', 'sub and client_id must be strings');
      }
      const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
      ctx.state.caller = { sub: payload.sub, clientId: payload.client_id, scopes, claims: payload };
    } catch (error) {
      const refusal = toBearerError(error);
      if (refusal) return refuse(ctx, realm, refusal);
      // Not the caller's fault (issuer unreachable, unusable JWKS): 503 and a log line, never a
      // 401 that would make the client throw away a good token.
      ctx.status = 503;
      ctx.body = { error: 'temporarily_unavailable', error_description: 'cannot verify access tokens now' };
      ctx.app.emit('error', error, ctx);
      return;
    }
    await next();
  };

  /** RFC 6750 §3.1: 403 insufficient_scope, naming the scopes the route needs. */
  function requireScopes(...needed: string[]): Middleware<CallerState> {
    return async function requireScopesMiddleware(ctx, next) {
      const missing = needed.filter((scope) => !ctx.state.caller.scopes.includes(scope));
      if (missing.length > 0) {
        const error = new BearerError(403, 'insufficient_scope', 'the token lacks a scope', needed.join(' '));
        return refuse(ctx, realm, error);
      }
      await next();
    };
  }

  return { requireToken, requireScopes };
}

/** The issuer's keys: discovery (once, retried after a failure) → jwks_uri → jose's remote set. */
function createIssuerKeys(options: AccessTokenOptions): JWTVerifyGetKey {
  let keys: Promise<JWTVerifyGetKey> | undefined;
  async function discover(): Promise<JWTVerifyGetKey> {
    const url = new URL('.well-known/openid-configuration', options.issuer.replace(/\/?$/, '/'));
    const response = await fetch(url, { signal: AbortSignal.timeout(5000), redirect: 'error' });
    if (!response.ok) throw new Error(`discovery answered ${response.status}`);
    const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
    // OpenID Connect Discovery §4.3: the document must name the issuer we asked for.
    if (metadata.issuer !== options.issuer) throw new Error('discovery names another issuer');
    if (typeof metadata.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
    // An unknown `kid` (the issuer rotated its keys) refetches the set, at most once per cooldown.
    return createRemoteJWKSet(new URL(metadata.jwks_uri), { cooldownDuration: options.jwksCooldownMs });
  }
  return async (header, token) => {
    keys ??= discover().catch((error: unknown) => {
      keys = undefined;
      throw error;
    });
    return (await keys)(header, token);
  };
}

function extractToken(ctx: Context): string {
  const header = ctx.get('Authorization');
  // RFC 6750 §2.3 allows `?access_token=`, but URLs end up in logs and Referer headers: refused.
  if (ctx.query.access_token !== undefined) {
    throw new BearerError(400, 'invalid_request', 'send the access token in the Authorization header only');
  }
  // RFC 6750 §3.1: no credentials (or another scheme) → a challenge without an error code.
  if (!/^Bearer(\s|$)/i.test(header)) throw new BearerError(401, undefined, 'no access token');
  const match = BEARER.exec(header);
  if (!match?.[1]) throw new BearerError(400, 'invalid_request', 'malformed Authorization header');
  return match[1];
}

/** Token problems become 401 invalid_token; anything else is not the token's fault (undefined). */
function toBearerError(error: unknown): BearerError | undefined {
  if (error instanceof BearerError) return error;
  const invalid = (description: string) => new BearerError(401, 'invalid_token', description);
  if (error instanceof errors.JWTExpired) return invalid('the token expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return invalid('the token is for another audience');
    if (error.claim === 'iss') return invalid('the token is from another issuer');
    if (error.claim === 'typ') return invalid('the token is not an at+jwt access token');
    if (error.claim === 'nbf') return invalid('the token is not valid yet');
    return invalid(`the ${error.claim} claim is missing or invalid`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid('the signing algorithm is not allowed');
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWSSignatureVerificationFailed) {
    return invalid('the signature does not verify with the issuer keys');
  }
  // Our server names the key (kid) in every token; without it several keys could match.
  if (error instanceof errors.JWKSMultipleMatchingKeys) return invalid('the token does not name its key');
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return invalid('the token is malformed');
  }
  return undefined;
}

function refuse(ctx: Context, realm: string, error: BearerError): void {
  const params = [`realm="${realm}"`];
  if (error.error) params.push(`error="${error.error}"`, `error_description="${error.description}"`);
  if (error.scope) params.push(`scope="${error.scope}"`);
  ctx.status = error.status;
  ctx.set('WWW-Authenticate', `Bearer ${params.join(', ')}`);
  ctx.body = { error: error.error, error_description: error.description };
}
