import type Provider from 'oidc-provider';

import type { Config } from '../config/config.js';
import type { PageRenderer } from '../http/render-page.js';
import type { AccountKit, AccountRouter, AccountStep } from './account-kit.js';
import { ACCOUNT_BASE_PATH, ACCOUNT_SECTIONS, ACCOUNT_SIGNED_OUT_PATH } from './account-kit.js';
import { ACCOUNT_CLIENT_ID } from './account-client.js';

/**
 * Signing out from the centre: OpenID Connect RP-Initiated Logout 1.0, as any relying party.
 *
 * POST /account/sign-out (CSRF) sends the browser to the provider's end_session endpoint with
 * `client_id=account-console` and the post_logout_redirect_uri registered for it
 * (account-client.ts). The provider asks once ("Sign out?", its logoutSource page; the request
 * carries no ID token, and a GET must not end a session on its own), ends the SSO session and the
 * grants that do not outlive it, records `session.ended`, and lands on /account/signed-out.
 *
 * NOTE: ending the session in-process here would skip that page, but also the provider's own
 * logout (back-channel notices, its audit event, its cookie handling); one click is the price.
 */

export interface SignOutPagesDeps {
  config: Pick<Config, 'issuer'>;
  provider: Provider;
  pages: PageRenderer;
}

/** The provider's end_session request for the centre (RP-Initiated Logout 1.0 §2). */
export function endSessionUrl(provider: Provider, issuer: string): string {
  const query = new URLSearchParams({ client_id: ACCOUNT_CLIENT_ID, post_logout_redirect_uri: `${issuer}${ACCOUNT_SIGNED_OUT_PATH}` });
  return `${provider.pathFor('end_session')}?${query.toString()}`;
}

export function registerSignOutPages(router: AccountRouter, kit: AccountKit, deps: SignOutPagesDeps): void {
  const { config, provider, pages } = deps;

  /**
   * Without a session there is nothing to end (signed out in another tab, or the account was
   * disabled): straight to the signed-out page. With one, the form's token must be its own.
   */
  const sessionOrSignedOut: AccountStep = async function sessionOrSignedOut(ctx, next) {
    const session = await provider.Session.get(ctx);
    if (!session.accountId) return kit.redirect(ctx, ACCOUNT_SIGNED_OUT_PATH);
    ctx.state.sessionUid = session.uid;
    return next();
  };

  router.post('/sign-out', kit.noStore, kit.form, sessionOrSignedOut, kit.checkCsrf, async function signOut(ctx) {
    kit.redirect(ctx, endSessionUrl(provider, config.issuer));
  });

  /**
   * Where the provider's logout lands (and a cancelled sign-in). "No, stay signed in" on the
   * provider's page lands here too, with the session alive: then the page says so.
   */
  router.get('/signed-out', kit.noStore, async function signedOut(ctx) {
    const current = await kit.signIn.current(ctx);
    await pages.render(ctx, 'account/signed-out', {
      title: current ? 'Still signed in' : 'Signed out',
      stillSignedIn: Boolean(current),
      accountHref: ACCOUNT_SECTIONS.overview.path,
      signInHref: `${ACCOUNT_BASE_PATH}/sign-in`,
    });
  });
}
