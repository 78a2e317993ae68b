import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';

import type { AccountService } from '../../accounts/account.service.js';
import type { AuditActor } from '../../audit/audit.service.js';
import type { AdminAuthority } from '../../clients/admin-authority.js';
import { scopedAuthority } from '../../clients/admin-authority.js';
import type { Config } from '../../config/config.js';
import { AppError } from '../../http/app-error.js';
import type { AdminScope } from './api-tokens.js';
import { adminScopesFor } from './api-tokens.js';
import { ProblemError } from './problem.js';

/**
 * Bearer token authorization for the management API (RFC 6750).
 *
 * Tokens are our provider's own opaque access tokens, looked up in-process (no introspection
 * round trip): an account's AccessToken (admin console, or an authorization-code client the
 * admin consented to) or a client's ClientCredentials token. Either must carry the API's
 * audience (the RFC 8707 resource indicator `config.adminApi.resource`). Then:
 * - an account token acts for its account, which must exist, be enabled and be an admin;
 * - a client credentials token acts for its client, which must still exist;
 * - the token's client must still be allowed the scope (an admin may take a scope off a client
 *   whose tokens are still out there).
 */

export interface ApiPrincipal {
  kind: 'account' | 'client';
  /** Who the audit log names for changes made with this token. */
  actor: AuditActor;
  /** The client the token was issued to. */
  clientId: string;
  /** The token's scopes that are still in force. */
  scopes: ReadonlySet<string>;
}

/** A refusal whose response carries a WWW-Authenticate challenge (RFC 6750 §3). */
export class BearerError extends ProblemError {
  override name = 'BearerError';

  constructor(status: 400 | 401 | 403, code: string, message: string, challenge: string) {
    super(status, code, message, { 'WWW-Authenticate': challenge });
  }
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** RFC 6750 §3: auth-param values are quoted strings; ours never contain `"` or `\`, but be safe. */
const quoted = (value: string) => `"${value.replace(/["\\]/g, '')}"`;

export interface ApiAuthDeps {
  provider: Provider;
  config: Pick<Config, 'adminApi'>;
  accounts: Pick<AccountService, 'findById'>;
}

export interface ApiAuth {
  /** Finds the principal behind the bearer token, or refuses with 400/401/403. Sets `ctx.state.apiPrincipal`. */
  authenticate: Middleware;
  /** Refuses with 403 insufficient_scope unless the principal holds `scope`. Runs after authenticate. */
  requireScope(scope: AdminScope): Middleware;
}

export function principalOf(ctx: Context): ApiPrincipal {
  const principal = ctx.state.apiPrincipal as ApiPrincipal | undefined;
  if (!principal) throw new Error('no API principal: authenticate must run first');
  return principal;
}

/**
 * What the caller may give (src/clients/admin-authority.ts): exactly its token's scopes still in
 * force, whoever the token acts for. An administrator who minted a token with fewer scopes gave
 * it less than they hold, and a service client holds what an administrator granted it.
 */
export function authorityOf(principal: ApiPrincipal | undefined): AdminAuthority {
  // Only public routes have no principal, and they change nothing.
  if (!principal) throw new Error('no API principal: authenticate must run first');
  return scopedAuthority(principal.actor, principal.scopes);
}

export function createApiAuth({ provider, config, accounts }: ApiAuthDeps): ApiAuth {
  const realm = config.adminApi.resource;
  const challenge = (params: Record<string, string>) =>
    `Bearer ${Object.entries({ realm, ...params })
      .map(([k, v]) => `${k}=${quoted(v)}`)
      .join(', ')}`;
  const invalidToken = (description: string) =>
    new BearerError(401, 'auth.invalid_token', description, challenge({ error: 'invalid_token', error_description: description }));

  async function findToken(value: string) {
    // Either model may hold it; opaque values are random, so at most one does. Asked together,
    // the two lookups are one database query (both models share a collection, mongo-adapter.ts).
    const [accessToken, clientCredentials] = await Promise.all([provider.AccessToken.find(value), provider.ClientCredentials.find(value)]);
    return accessToken ?? clientCredentials;
  }

  async function resolve(ctx: Context): Promise<ApiPrincipal> {
    const header = ctx.get('authorization');
    // RFC 6750 §3.1: without any credentials, a challenge without an error code.
    if (!header || !/^bearer(\s|$)/i.test(header)) {
      throw new BearerError(401, 'auth.token_missing', 'This API needs a bearer access token (Authorization: Bearer <token>).', challenge({}));
    }
    const value = BEARER.exec(header)?.[1];
    if (!value) {
      const description = 'The Authorization header is not a well-formed bearer token.';
      throw new BearerError(400, 'auth.invalid_request', description, challenge({ error: 'invalid_request', error_description: description }));
    }

    // NOTE: never log or echo the token value.
    const token = await findToken(value);
    if (!token || token.isExpired) throw invalidToken('The access token is unknown, expired or revoked.');
    const aud = (token as { aud?: string | string[] }).aud;
    const audiences = Array.isArray(aud) ? aud : aud ? [aud] : [];
    if (!audiences.includes(config.adminApi.resource)) {
      throw invalidToken(`The access token was not issued for this API (resource ${config.adminApi.resource}).`);
    }
    // A DPoP- or certificate-bound token must come with its proof, which this API does not take:
    // accepting it as a plain bearer token would undo the binding.
    if (token.isSenderConstrained()) throw invalidToken('Sender-constrained (DPoP, mTLS) tokens are not accepted by this API.');

    const clientId = token.clientId;
    const client = clientId ? await provider.Client.find(clientId).catch(() => undefined) : undefined;
    if (!clientId || !client) throw invalidToken('The client this token was issued to no longer exists.');
    const allowed = new Set<string>(adminScopesFor(config, client));
    const scopes = new Set([...token.scopes].filter((s) => allowed.has(s)));

    if (token.kind === 'ClientCredentials') {
      return { kind: 'client', actor: { type: 'client', id: clientId, label: client.clientName ?? undefined }, clientId, scopes };
    }
    const accountId = (token as { accountId?: string }).accountId;
    if (!accountId) throw invalidToken('The access token names no account.');
    const account = await accounts.findById(accountId);
    // 403, not 401: the token is genuine, but its account may not use this API (now).
    if (!account) throw new AppError('auth.account_not_found');
    if (account.disabled) throw new AppError('auth.account_disabled');
    if (!account.roles.includes('admin')) {
      throw new AppError('auth.not_admin');
    }
    return { kind: 'account', actor: { type: 'account', id: account.id, label: account.email }, clientId, scopes };
  }

  return {
    authenticate: async function authenticateBearer(ctx, next) {
      ctx.state.apiPrincipal = await resolve(ctx);
      await next();
    },

    requireScope(scope) {
      return async function requireApiScope(ctx, next) {
        const principal = principalOf(ctx);
        if (!principal.scopes.has(scope)) {
          const description = `This request needs the scope ${scope}.`;
          throw new BearerError(
            403,
            'auth.insufficient_scope',
            description,
            challenge({ error: 'insufficient_scope', error_description: description, scope }),
          );
        }
        await next();
      };
    },
  };
}
