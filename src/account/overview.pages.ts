import type { TotpService } from '../accounts/totp.service.js';
import type { AuditEvent, AuditService } from '../audit/audit.service.js';
import type { ClientService } from '../clients/client.service.js';
import { describeUserAgent } from '../http/user-agent-label.js';
import type { AccountKit, AccountRouter } from './account-kit.js';
import type { TimeLabel } from './time-label.js';
import { timeLabel } from './time-label.js';

/**
 * The centre's landing page (/account/overview): who the person is to this server (name, email
 * and whether it is verified), how they can sign in (password, code by email, authenticator app,
 * recovery codes left), and the last sign-in steps on the account from the audit log, so that a
 * sign-in they do not recognise stands out.
 *
 * Cheap on purpose: the account is already loaded (the kit), then one read for the authenticator's
 * status, two bounded audit reads (newest first, by the target index) and one read per distinct
 * app in the list.
 */

/** How many sign-in steps the page lists. */
export const RECENT_ACTIVITY_LIMIT = 10;
/** Each audit read fetches a few more than shown: other `sign_in.`/`mfa.` events are dropped. */
const READ_LIMIT = 25;

/** The sign-in steps shown, and how each is named to the person. */
const SIGN_IN_STEPS: Record<string, string> = {
  'sign_in.password': 'Password',
  'sign_in.email_code': 'Code by email',
  'mfa.totp': 'Authenticator app code',
  'mfa.recovery_code': 'Recovery code',
  'mfa.email_code': 'Code by email (second step)',
  'mfa.password': 'Password (second step)',
};

/** Why a step was refused, in words (reason codes the sign-in pages record); others: "Refused". */
const REFUSALS: Record<string, string> = {
  wrong_password: 'Wrong password',
  no_password: 'No password set',
  account_disabled: 'Account disabled',
  code_invalid: 'Wrong code',
  code_expired: 'Code expired',
  code_exhausted: 'Too many wrong codes',
  code_replayed: 'Code already used',
  throttled: 'Too many attempts',
  throttled_ip: 'Too many attempts',
};

export interface ActivityView {
  at: TimeLabel | undefined;
  step: string;
  ok: boolean;
  result: string;
  app: string | undefined;
  device: string;
  ip: string | undefined;
}

export interface OverviewPagesDeps {
  totp: Pick<TotpService, 'status'>;
  audit: Pick<AuditService, 'list'>;
  clients: Pick<ClientService, 'get'>;
}

/** The account's latest sign-in steps (as actor or target), newest first, at most `limit`. */
export async function recentSignInActivity(deps: OverviewPagesDeps, accountId: string, limit = RECENT_ACTIVITY_LIMIT): Promise<ActivityView[]> {
  const pages = await Promise.all(['sign_in.', 'mfa.'].map((action) => deps.audit.list({ target: accountId, action }, { limit: READ_LIMIT })));
  const events = pages
    .flatMap((page) => page.events)
    .filter((event) => Object.hasOwn(SIGN_IN_STEPS, event.action))
    // Ids are time-ordered (audit.service.ts): newest first.
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .slice(0, limit);
  const names = new Map<string, string>();
  await Promise.all(
    [...new Set(events.flatMap((event) => (event.clientId ? [event.clientId] : [])))].map(async (clientId) => {
      const client = await deps.clients.get(clientId);
      names.set(clientId, client?.name || clientId);
    }),
  );
  return events.map((event: AuditEvent) => ({
    at: timeLabel(event.at),
    step: SIGN_IN_STEPS[event.action] ?? event.action,
    ok: event.outcome === 'success',
    result: event.outcome === 'success' ? 'Accepted' : ((event.reason && REFUSALS[event.reason]) ?? 'Refused'),
    app: event.clientId ? names.get(event.clientId) : undefined,
    device: describeUserAgent(event.userAgent),
    ip: event.ip,
  }));
}

export function registerOverviewPages(router: AccountRouter, kit: AccountKit, deps: OverviewPagesDeps): void {
  router.get('/overview', ...kit.page, async function showOverview(ctx) {
    const { account } = ctx.state;
    const [totp, activity] = await Promise.all([deps.totp.status(account.id), recentSignInActivity(deps, account.id)]);
    await kit.render(ctx, 'account/overview', 'overview', {
      title: 'Your account',
      overview: {
        name: account.name,
        email: account.email,
        emailVerified: account.emailVerified,
        memberSince: timeLabel(account.createdAt),
        hasPassword: account.hasPassword,
        totp: { enabled: totp.enabled, since: timeLabel(totp.enabledAt), recoveryCodesLeft: totp.recoveryCodesLeft },
      },
      activity,
      activityLimit: RECENT_ACTIVITY_LIMIT,
    });
  });
}
