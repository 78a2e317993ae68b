import Router from '@koa/router';
import type { mongo } from 'mongoose';
import type Provider from 'oidc-provider';

import type { AccountAccessService } from '../accounts/account-access.service.js';
import type { AccountNotices } from '../accounts/account-notices.js';
import type { AccountService } from '../accounts/account.service.js';
import type { EmailCodeService } from '../accounts/email-code.service.js';
import type { PasswordPolicy } from '../accounts/password-policy.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ClientService } from '../clients/client.service.js';
import type { Config } from '../config/config.js';
import type { PageRenderer } from '../http/render-page.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import type { MailOutbox } from '../mail/outbox.service.js';
import type { CsrfTokens } from '../sign-in/csrf.js';
import type { AccountState } from './account-kit.js';
import { ACCOUNT_BASE_PATH, ACCOUNT_SECTIONS, createAccountKit } from './account-kit.js';
import { registerDeletePages } from './delete.pages.js';
import { registerEmailPages } from './email.pages.js';
import { registerPasswordPages } from './password.pages.js';
import { registerAppsPages } from './apps.pages.js';
import { registerDataExportPages } from './data-export.pages.js';
import { registerOverviewPages } from './overview.pages.js';
import { registerProfilePages } from './profile.pages.js';
import { registerSecurityPages } from './security.pages.js';
import { registerSessionsPages } from './sessions.pages.js';
import { registerSignOutPages } from './sign-out.pages.js';

/**
 * The account centre (/account): the person's own pages, a relying party of this server
 * (account-kit.ts says how it signs in and which actions need a recent authentication). Each
 * section is a page module registering its routes on this router.
 */

export interface AccountRouterDeps {
  config: Config;
  provider: Provider;
  accounts: AccountService;
  totp: TotpService;
  limits: SignInLimits;
  pages: PageRenderer;
  csrf: CsrfTokens;
  logger: Logger;
  audit: AuditService;
  /** Email, password and deletion pages (email.pages.ts, password.pages.ts, delete.pages.ts). */
  db: mongo.Db;
  emailCodes: EmailCodeService;
  outbox: MailOutbox;
  /** The account's sessions and connected apps (sessions, apps, data download, email change). */
  access: AccountAccessService;
  passwordPolicy: PasswordPolicy;
  /** Notice mails to the person (account-notices.ts). */
  notices: AccountNotices;
  /** App names in the sign-in activity. */
  clients: Pick<ClientService, 'get'>;
  /** Epoch milliseconds. */
  now?: () => number;
}

export function createAccountRouter(deps: AccountRouterDeps): Router<AccountState> {
  const router = new Router<AccountState>({ prefix: ACCOUNT_BASE_PATH });
  const kit = createAccountKit(deps);

  router.get('/', kit.noStore, async function accountHome(ctx) {
    kit.redirect(ctx, ACCOUNT_SECTIONS.overview.path);
  });
  router.get('/sign-in', kit.signIn.start);
  router.get('/callback', kit.signIn.callback);
  registerSignOutPages(router, kit, deps);

  registerOverviewPages(router, kit, deps);
  registerProfilePages(router, kit, deps);
  registerSecurityPages(router, kit, deps);
  registerEmailPages(router, kit, deps);
  registerPasswordPages(router, kit, deps);
  registerDeletePages(router, kit, deps);
  registerSessionsPages(router, kit, deps);
  registerAppsPages(router, kit, deps);
  registerDataExportPages(router, kit, deps);

  return router;
}
