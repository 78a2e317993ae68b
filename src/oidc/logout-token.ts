import type Provider from 'oidc-provider';

import type { Logger } from '../logging/logger.js';
import type { BackchannelLogoutService, LogoutTokenSigner } from './backchannel-logout.service.js';

/** OpenID Connect Back-Channel Logout 1.0 §2.4: the one event a logout token carries. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * Logout tokens signed by the provider itself, as its own `Client#backchannelLogout` makes them:
 * an IdToken with `use: 'logout'` (`typ: logout+jwt`, `iss`, `aud` = the client, `iat`, a
 * two-minute `exp`), signed with the key the provider signs ID tokens with now (its `kid` is in
 * our JWKS), with `sub`, `jti`, the `events` claim, `sid` when the client asked for it, and no
 * `nonce` (§2.4 forbids it).
 */
export function createLogoutTokenSigner(provider: Provider): LogoutTokenSigner {
  return async ({ clientId, sub, sid, jti }) => {
    const client = await provider.Client.find(clientId);
    const uri = client?.backchannelLogoutUri;
    if (!client || !uri) return undefined;
    const token = new provider.IdToken({ sub }, { client });
    // NOTE: the mask keeps `sub` out of the claims filter, which would otherwise drop it for want
    // of a scope (the provider's own backchannelLogout does the same).
    (token as unknown as { mask: Record<string, null> }).mask = { sub: null };
    token.set('events', { [BACKCHANNEL_LOGOUT_EVENT]: {} });
    token.set('jti', jti);
    if (client.backchannelLogoutSessionRequired && sid) token.set('sid', sid);
    return { uri, token: await token.issue({ use: 'logout' }) };
  };
}

/**
 * Makes the provider's RP-Initiated Logout hand its logout tokens to our outbox instead of
 * sending them itself: its end-session confirmation calls `Client#backchannelLogout(sub, sid)`
 * for each client of the session with a `backchannel_logout_uri`, and awaits it (a failure would
 * only be reported as `backchannel.error`, never retried). Replaced here, the call stores the
 * delivery, and the worker signs and sends it, so every logout token goes out once, through one
 * path, with retries.
 */
export function installBackchannelLogout(provider: Provider, service: Pick<BackchannelLogoutService, 'enqueue' | 'useSigner'>, logger: Logger): void {
  service.useSigner(createLogoutTokenSigner(provider));
  // The Client class is made per Provider instance: patching its prototype touches no other provider.
  const prototype = provider.Client.prototype as unknown as { backchannelLogout(this: { clientId: string }, sub: string, sid: string | undefined): Promise<void> };
  prototype.backchannelLogout = async function backchannelLogout(sub, sid) {
    await service.enqueue([{ clientId: this.clientId, sub, sid }]);
  };
  // The provider reports a failed call (here: the notice could not be stored) only as this event,
  // and goes on with the logout.
  provider.on('backchannel.error', (_ctx: unknown, err: unknown, client: { clientId?: string } | undefined) => {
    logger.warn('back-channel logout notice not stored', { clientId: client?.clientId, reason: err instanceof Error ? err.message : String(err) });
  });
}
