import type Provider from 'oidc-provider';

import type { Logger } from '../logging/logger.js';

/**
 * Provider events to the log. Only ids and error codes: never tokens, codes or secrets.
 * (The audit log of a later issue hangs off these same events.)
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

export function logProviderEvents(provider: Provider, logger: Logger): void {
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
  provider.on('grant.success', (ctx) => {
    logger.info('tokens issued', { client: ctx.oidc.client?.clientId, requestId: ctx.state.requestId });
  });
}
