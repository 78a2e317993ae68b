import { z } from 'zod';

import type { AccountAccessService, ConnectedApp } from '../accounts/account-access.service.js';
import { describeClaim, describeScope } from '../sign-in/scope-descriptions.js';
import type { AccountContext, AccountKit, AccountRouter, RenderOptions } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';
import { timeLabel } from './time-label.js';

/**
 * The apps the person let in (/account/apps): each app once (however many grants it holds), with
 * its name and logo, what it may see or do in plain words (the consent page's descriptions), and
 * since when; "Remove access" takes it all back (access.revokeApp): its refresh and access tokens
 * stop working and its next sign-in asks for consent again.
 *
 * NOTE: no recent authentication, like the sessions page: taking access away is not sensitive.
 * Only the apps listed here can be removed: the centre and the admin console are part of this
 * server (first-party) and are never shown, so never removed from here.
 */

const APPS_PATH = ACCOUNT_SECTIONS.apps.path;

/** Client ids: ours are base64url; registered ones may carry other printable characters. */
const clientIdField = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/);

export interface AppsPagesDeps {
  access: Pick<AccountAccessService, 'listApps' | 'revokeApp'>;
}

function appItem(app: ConnectedApp) {
  const permissions = [
    ...app.scopes.map((scope) => describeScope(scope).description),
    ...app.claims.map((claim) => `${describeClaim(claim).description} (${claim})`),
  ];
  return { clientId: app.clientId, name: app.name, logoUri: app.logoUri, since: timeLabel(app.since), permissions };
}

export function registerAppsPages(router: AccountRouter, kit: AccountKit, deps: AppsPagesDeps): void {
  const { access } = deps;

  const renderApps = async (ctx: AccountContext, options: RenderOptions = {}) => {
    const apps = (await access.listApps(ctx.state.account.id)).map(appItem);
    await kit.render(ctx, 'account/apps', 'apps', { title: 'Connected apps', apps }, options);
  };

  router.get('/apps', ...kit.page, async function showApps(ctx) {
    const removed = ctx.query.removed === '1' ? 'Access removed. The app can no longer use your account; if you use it again, it asks for your permission first.' : undefined;
    await renderApps(ctx, { notice: removed });
  });

  router.post('/apps/revoke', ...kit.post, async function revokeApp(ctx) {
    const { account } = ctx.state;
    const clientId = clientIdField.safeParse(ctx.state.form.clientId);
    if (!clientId.success) return renderApps(ctx, { error: 'Choose an app from the list.', status: 400 });
    const listed = (await access.listApps(account.id)).some((app) => app.clientId === clientId.data);
    const revoked = listed && (await access.revokeApp(account.id, clientId.data));
    if (!revoked) {
      await kit.audit(ctx, 'grant.revoked', 'failure', { reason: 'not_connected', clientId: clientId.data });
      return renderApps(ctx, { error: 'That app has no access to your account (any more). The list below is up to date.', status: 404 });
    }
    kit.log(ctx).info('app access revoked', { accountId: account.id, client: clientId.data });
    await kit.audit(ctx, 'grant.revoked', 'success', { clientId: clientId.data, details: { clientId: clientId.data } });
    kit.redirect(ctx, `${APPS_PATH}?removed=1`);
  });
}
