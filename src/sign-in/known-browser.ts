import { randomBytes } from 'node:crypto';

import { KNOWN_BROWSER_TTL_MS } from '../accounts/known-browser.service.js';
import type { SignInDeps } from './sign-in-kit.js';
import type { SignInContext } from './sign-in-context.js';

/**
 * "New sign-in" notices (NOTIFY_NEW_SIGN_IN): each browser carries a random id in a long-lived
 * cookie, and a finished sign-in records (account, browser) in the known-browser store. A browser
 * the account has not signed in from before, while others are known, gets the owner a notice.
 *
 * NOTE: the cookie is written only here, when a sign-in finishes (never on a GET), signed with
 * the app's cookie keys (a forged or edited id is replaced), HttpOnly, SameSite=Lax, and scoped
 * to /interaction, the only place it is read. It names a browser, not a person: the store keeps
 * keyed hashes only (src/accounts/known-browser.service.ts).
 */
export const KNOWN_BROWSER_COOKIE = 'known_browser';

const BROWSER_ID = /^[A-Za-z0-9_-]{22}$/;

export function createKnownBrowserCheck(deps: Pick<SignInDeps, 'config' | 'knownBrowsers' | 'notices' | 'accounts' | 'logger'>) {
  const { config, knownBrowsers, notices, accounts, logger } = deps;
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, signed: true, path: '/interaction', overwrite: true, maxAge: KNOWN_BROWSER_TTL_MS };

  /**
   * Runs as the sign-in of `accountId` finishes. Costs nothing when the setting is off; one write
   * for a known browser; a read more (and a queued mail) for a new one. Never fails the sign-in.
   */
  return async function noteSignIn(ctx: SignInContext, accountId: string): Promise<void> {
    if (!config.notices.newSignIn) return;
    // A step-up continues a session this browser already signed in to: not a new sign-in.
    if (ctx.state.interaction.prompt.name !== 'login') return;
    try {
      const kept = ctx.cookies.get(KNOWN_BROWSER_COOKIE, { signed: true });
      const browserId = kept && BROWSER_ID.test(kept) ? kept : randomBytes(16).toString('base64url');
      // Written again on every sign-in: a browser in use is remembered for another full term.
      ctx.cookies.set(KNOWN_BROWSER_COOKIE, browserId, { ...cookieOptions, secure: ctx.secure });
      const verdict = await knownBrowsers.signedIn(accountId, browserId);
      if (verdict !== 'new') return;
      const account = ctx.state.account?.id === accountId ? ctx.state.account : await accounts.findById(accountId);
      if (!account) return;
      const { client } = ctx.state;
      // NOTE: a dynamically registered client named itself, unreviewed: its name stays out of mail.
      await notices.newSignIn(account, client.registeredDynamically ? {} : { clientName: client.name });
    } catch (err) {
      (ctx.state.log ?? logger).warn('new sign-in check failed', { accountId, error: (err as Error).name, reason: (err as Error).message });
    }
  };
}
