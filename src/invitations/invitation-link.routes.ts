import Router from '@koa/router';
import type Provider from 'oidc-provider';

import type { AccountService } from '../accounts/account.service.js';
import { ACCOUNT_CLIENT_ID } from '../account/account-client.js';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { AppError } from '../http/app-error.js';
import { createFirstPartySignIn } from '../oidc/first-party-sign-in.js';
import { sealInvitation } from '../sign-in/sign-up-invitation.js';
import type { InvitationService } from './invitation.service.js';
import { INVITATION_LINK_PATH, INVITATION_QUERY_PARAMETER } from './invitation.service.js';

export interface InvitationLinkDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  invitations: InvitationService;
  secretBox: SecretBox;
}

/**
 * GET /sign-up[?invitation=<token>]: where an invitation link leads. Writes nothing on the
 * server: it checks the invitation (a read), then starts the account centre's authorization (the
 * built-in first-party client) with `prompt=create`, so the browser lands on the sign-up form,
 * and the token sealed into the request's `invitation` parameter (sign-up-invitation.ts), where
 * the sign-up spends one use. An email-bound invitation prefills its address.
 * NOTE: the token is a secret in a URL; this page answers with no-referrer and never logs it.
 * SIGN_UP=closed: 404. SIGN_UP=invite: a valid invitation is required. SIGN_UP=open: the link
 * works without one too (a plain "create an account" entry).
 */
export function createInvitationLinkRouter(deps: InvitationLinkDeps): Router {
  const { config, invitations, secretBox } = deps;
  const router = new Router();
  const notValid = () => new AppError(400, 'invitation.invalid', 'This invitation link is not valid. It may have expired, been used already or been withdrawn. Ask for a new one.');

  router.get(INVITATION_LINK_PATH, async function openInvitationLink(ctx) {
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cache-Control', 'no-store');
    if (config.signUp.mode === 'closed') throw new AppError(404, 'sign_up.closed', 'Sign-up is not available here.');
    const raw = ctx.query[INVITATION_QUERY_PARAMETER];
    const token = typeof raw === 'string' && raw.length > 0 && raw.length <= 128 ? raw : undefined;
    if (raw !== undefined && !token) throw notValid();
    const check = token ? await invitations.check(token) : undefined;
    if (token && !check?.valid) throw notValid();
    if (config.signUp.mode === 'invite' && !check?.valid) throw notValid();
    const extraParams: Record<string, string> = { prompt: 'create' };
    if (token) extraParams.invitation = sealInvitation(secretBox, token);
    if (check?.valid && check.boundEmail) extraParams.login_hint = check.boundEmail;
    // The account centre's own sign-in (same client, callback and cookie as /account/sign-in),
    // with this request's parameters.
    const signIn = createFirstPartySignIn({
      provider: deps.provider,
      config,
      accounts: deps.accounts,
      clientId: ACCOUNT_CLIENT_ID,
      basePath: '/account',
      landingPath: '/account/security',
      cancelledPath: '/account/signed-out',
      extraParams,
    });
    await signIn.start(ctx, async () => {});
  });
  return router;
}
