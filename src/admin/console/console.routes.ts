import Router from '@koa/router';

import type { Deps } from '../../deps.js';
import { createFirstPartySignIn } from '../../oidc/first-party-sign-in.js';
import { ADMIN_BASE_PATH, ADMIN_CLIENT_ID } from '../admin-client.js';
import type { ConsoleKit, ConsoleRouter, ConsoleState } from './console-kit.js';
import { createConsoleKit } from './console-kit.js';
import { registerMailPages } from './mail.pages.js';

/**
 * The admin console (/admin): server-rendered pages over the same services as the CLI and the
 * management API. Sign-in goes through this server as a relying party of itself (console-kit.ts).
 */

/** A section of the console: registers its pages on the console router. */
export type ConsolePages = (router: ConsoleRouter, deps: Deps, kit: ConsoleKit) => void;

export function createAdminConsoleRouter(deps: Deps, sections: ConsolePages[]): Router<ConsoleState> {
  const { config, provider, accounts, pages, csrf } = deps;
  const router = new Router<ConsoleState>({ prefix: ADMIN_BASE_PATH });
  const signIn = createFirstPartySignIn({
    provider,
    config,
    accounts,
    clientId: ADMIN_CLIENT_ID,
    basePath: ADMIN_BASE_PATH,
    landingPath: `${ADMIN_BASE_PATH}/clients`,
    cancelledPath: `${ADMIN_BASE_PATH}/signed-out`,
    // The console accepts only the multi-factor class (console-kit.ts): ask for it, so the
    // provider's policy asks for the authenticator app (or its enrolment) at this sign-in.
    extraParams: { acr_values: config.acr.multiFactor },
  });
  const kit = createConsoleKit({ config, pages, csrf, signIn });

  router.get('/sign-in', signIn.start);
  router.get('/callback', signIn.callback);
  // Where the console's sign-out (and a cancelled sign-in) lands. "No, stay signed in" at the
  // provider's logout page comes here too, with the session intact: the page then says so.
  router.get('/signed-out', async function signedOut(ctx) {
    const stillSignedIn = Boolean(await signIn.current(ctx));
    await pages.render(ctx, 'admin/signed-out', {
      title: stillSignedIn ? 'Admin console' : 'Signed out',
      stillSignedIn,
      signInHref: `${ADMIN_BASE_PATH}/sign-in`,
      consoleHref: `${ADMIN_BASE_PATH}/clients`,
    });
  });
  router.get('/', kit.requireAdmin, async function home(ctx) {
    kit.redirect(ctx, `${ADMIN_BASE_PATH}/clients`);
  });

  // The mail section is always there (every node runs the outbox), whatever the caller lists.
  for (const register of [...sections, registerMailPages]) register(router, deps, kit);
  return router;
}
