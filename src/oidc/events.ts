import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

import type { AuditActor, AuditService, AuditTarget } from '../audit/audit.service.js';
import { currentRequest } from '../http/request-context.js';
import type { Logger } from '../logging/logger.js';

/**
 * Provider events to the log and to the audit log. Only ids, token *types* and error codes:
 * never tokens, codes or secrets (NOTE: `ctx.body` of the token and registration endpoints
 * holds token values and client secrets; only its key names are read here).
 *
 * Audit events from here: `token.issued`, `token.revoked`, `session.ended`,
 * `client.registered`, `client.registration_updated`, `client.registration_deleted`.
 * The provider emits synchronously and does not wait for listeners, so these events are
 * recorded in the background: buffered and written in batches, off the token endpoint's path
 * (AuditService.flush writes them at once). Model events (`access_token.destroyed`, …)
 * carry no ctx: the IP and user agent come from the request context (request-context.ts).
 */
const CLIENT_ERROR_EVENTS = [
  'authorization.error',
  'grant.error',
  'introspection.error',
  'revocation.error',
  'userinfo.error',
  'end_session.error',
  'jwks.error',
  'discovery.error',
  'check_session_origin.error',
] as const;

/** Token response members that are tokens: listed by name in `token.issued`, never by value. */
const TOKEN_MEMBERS = ['access_token', 'refresh_token', 'id_token'] as const;

interface RevocableToken {
  kind: string;
  clientId?: string | undefined;
  accountId?: string | undefined;
  grantId?: string | undefined;
}

function clientActor(client: { clientId: string; clientName?: string | undefined } | undefined): AuditActor {
  return client ? { type: 'client', id: client.clientId, label: client.clientName ?? undefined } : { type: 'anonymous' };
}

function tokenTypesIn(body: unknown): string[] {
  if (!body || typeof body !== 'object') return [];
  return TOKEN_MEMBERS.filter((name) => typeof (body as Record<string, unknown>)[name] === 'string');
}

export function logProviderEvents(provider: Provider, logger: Logger, audit: AuditService): void {
  provider.on('server_error', (ctx, err) => {
    logger.error('provider server error', { err, path: ctx.path, requestId: ctx.state.requestId });
  });
  for (const event of CLIENT_ERROR_EVENTS) {
    // NOTE: the typings list these events per endpoint with different signatures; all share (ctx, err).
    (provider as unknown as NodeJS.EventEmitter).on(event, (ctx: { path: string; state: Record<string, unknown> }, err: { error?: string; error_description?: string; error_detail?: string; message: string }) => {
      logger.info(`oidc ${event}`, {
        error: err.error ?? err.message,
        description: err.error_description,
        detail: err.error_detail,
        path: ctx.path,
        requestId: ctx.state.requestId,
      });
    });
  }

  // Tokens issued ---------------------------------------------------------------------------

  provider.on('grant.success', (ctx) => {
    const { client, entities, params } = ctx.oidc;
    const grantType = typeof params?.grant_type === 'string' ? params.grant_type : 'unknown';
    const accountId = entities.Account?.accountId;
    const tokenTypes = tokenTypesIn(ctx.body);
    const scope = (ctx.body as { scope?: unknown } | undefined)?.scope;
    // (Not `tokenTypes` here: the logger redacts fields named like tokens.) Debug, not info: this
    // is the token endpoint's every request, and the audit log below keeps the same facts.
    logger.debug('tokens issued', { client: client?.clientId, grantType, issued: tokenTypes, requestId: ctx.state.requestId });
    audit.recordInBackground({
      action: 'token.issued',
      outcome: 'success',
      actor: clientActor(client),
      target: accountId ? { type: 'account', id: accountId } : client ? { type: 'client', id: client.clientId, label: client.clientName ?? undefined } : undefined,
      clientId: client?.clientId,
      details: {
        grantType,
        tokenTypes,
        ...(typeof scope === 'string' ? { scopes: scope.split(' ').filter(Boolean) } : {}),
        ...(entities.Grant?.jti ? { grantId: entities.Grant.jti } : {}),
      },
    });
  });

  // Tokens revoked --------------------------------------------------------------------------
  // One revocation request, one event. At the revocation endpoint (RFC 7009) the provider
  // destroys the token (`<kind>.destroyed`, no ctx) and, for a refresh token, then revokes its
  // grant (`grant.revoked`, with ctx): the destroyed event is recorded and grant.revoked is
  // skipped there. NOTE: for an access or refresh token the provider also revokes every other
  // token of the same grant (lib/helpers/revoke.js), without events: `grantTokensRevoked` says so.
  // `grant.revoked` elsewhere is recorded when the token endpoint revokes a grant because a code
  // or refresh token was replayed, and skipped for sign-out (`session.ended` covers it).

  const revocationPath = provider.pathFor('revocation');
  const onDestroyed = (tokenType: string) => (token: RevocableToken) => {
    if (currentRequest()?.path !== revocationPath) return;
    audit.recordInBackground({
      action: 'token.revoked',
      outcome: 'success',
      actor: token.clientId ? { type: 'client', id: token.clientId } : { type: 'anonymous' },
      target: token.accountId ? { type: 'account', id: token.accountId } : token.clientId ? { type: 'client', id: token.clientId } : undefined,
      clientId: token.clientId,
      details: { tokenType, ...(token.grantId ? { grantId: token.grantId, grantTokensRevoked: tokenType !== 'client_credentials' } : {}) },
    });
  };
  provider.on('access_token.destroyed', onDestroyed('access_token'));
  provider.on('refresh_token.destroyed', onDestroyed('refresh_token'));
  provider.on('client_credentials.destroyed', onDestroyed('client_credentials'));

  provider.on('grant.revoked', (ctx, grantId) => {
    const route = ctx.oidc.route;
    if (route === 'revocation' || route.startsWith('end_session')) return;
    const { client, entities, params } = ctx.oidc;
    const grantType = typeof params?.grant_type === 'string' ? params.grant_type : undefined;
    const accountId = entities.Account?.accountId ?? entities.RefreshToken?.accountId ?? entities.AuthorizationCode?.accountId;
    logger.info('grant revoked', { client: client?.clientId, route, grantType, requestId: ctx.state.requestId });
    audit.recordInBackground({
      action: 'token.revoked',
      outcome: 'success',
      actor: { type: 'system' },
      target: accountId ? { type: 'account', id: accountId } : { type: 'grant', id: grantId },
      clientId: client?.clientId,
      // A replayed single-use code or rotated refresh token (RFC 9700 §4.14.2, RFC 6749 §4.1.2).
      details: { tokenType: 'grant', grantId, trigger: grantType ? `${grantType}_replayed` : route },
    });
  });

  // Sign-out --------------------------------------------------------------------------------

  provider.on('end_session.success', (ctx) => {
    const { session, client } = ctx.oidc;
    // Nobody was signed in (the provider ends such requests the same way): nothing ended.
    if (!session?.accountId) return;
    audit.recordInBackground({
      action: 'session.ended',
      outcome: 'success',
      actor: { type: 'account', id: session.accountId },
      target: { type: 'session', id: session.uid },
      clientId: client?.clientId,
    });
  });

  // Dynamic client registration (RFC 7591, RFC 7592) ----------------------------------------

  const registrationTarget = (client: { clientId: string; clientName?: string | undefined }): AuditTarget => ({
    type: 'client',
    id: client.clientId,
    label: client.clientName ?? undefined,
  });

  provider.on('registration_create.success', (ctx: KoaContextWithOIDC, client) => {
    // Whether an initial access token was presented, never which: a stored one is an entity,
    // a static one (`initialAccessToken: '<string>'`) shows only as the bearer header.
    const withInitialToken = Boolean(ctx.oidc.entities.InitialAccessToken) || /^bearer /i.test(ctx.get('authorization'));
    logger.info('client registered', { client: client.clientId, requestId: ctx.state.requestId });
    audit.recordInBackground({
      action: 'client.registered',
      outcome: 'success',
      actor: { type: 'anonymous' },
      target: registrationTarget(client),
      clientId: client.clientId,
      details: withInitialToken ? { initialAccessToken: 'used' } : {},
    });
  });
  provider.on('registration_update.success', (ctx, client) => {
    logger.info('client registration updated', { client: client.clientId, requestId: ctx.state.requestId });
    // NOTE: `client` is the record as it was before the update; the response body has the new
    // metadata (and the secrets: only its name is read).
    const newName = (ctx.body as { client_name?: unknown } | undefined)?.client_name;
    audit.recordInBackground({
      action: 'client.registration_updated',
      outcome: 'success',
      actor: clientActor(client),
      target: registrationTarget({ clientId: client.clientId, clientName: typeof newName === 'string' ? newName : client.clientName }),
      clientId: client.clientId,
    });
  });
  provider.on('registration_delete.success', (ctx, client) => {
    logger.info('client registration deleted', { client: client.clientId, requestId: ctx.state.requestId });
    audit.recordInBackground({
      action: 'client.registration_deleted',
      outcome: 'success',
      actor: clientActor(client),
      target: registrationTarget(client),
      clientId: client.clientId,
    });
  });
}
