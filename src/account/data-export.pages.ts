import type { AccountAccessService } from '../accounts/account-access.service.js';
import type { TotpService } from '../accounts/totp.service.js';
import type { AuditEvent, AuditService } from '../audit/audit.service.js';
import type { AccountContext, AccountKit, AccountRouter } from './account-kit.js';

/**
 * "Download my data" (/account/data): what this server keeps about the person, as one JSON file.
 *
 * Sensitive (recent authentication): the file holds where and from which addresses the person
 * signs in, and a borrowed session must not be enough to take that away. The page is a GET; the
 * download is a POST with CSRF, because it writes an audit event (GETs never write).
 *
 * What is in it: the account (never a password hash, the authenticator's key or recovery codes:
 * only whether they exist), its live sessions, its connected apps, and the audit events about it
 * (at most AUDIT_EXPORT_LIMIT, newest first). Events done by someone else (an administrator)
 * keep what was done but not who did it: that is the other person's data.
 */

export const AUDIT_EXPORT_LIMIT = 1000;
const PAGE = 500;

export interface DataExportPagesDeps {
  access: Pick<AccountAccessService, 'listSessions' | 'listApps'>;
  audit: Pick<AuditService, 'list'>;
  totp: Pick<TotpService, 'status'>;
  /** Epoch milliseconds. */
  now?: () => number;
}

/** Events with the account as target, then as actor (deduplicated), newest first, at most `limit`. */
async function auditEventsOf(audit: DataExportPagesDeps['audit'], accountId: string, limit: number): Promise<{ events: AuditEvent[]; truncated: boolean }> {
  const byId = new Map<string, AuditEvent>();
  let truncated = false;
  for (const filter of [{ target: accountId }, { actor: accountId }]) {
    let cursor: string | undefined;
    let read = 0;
    for (;;) {
      const page = await audit.list(filter, { limit: PAGE, cursor });
      for (const event of page.events) byId.set(event.id, event);
      read += page.events.length;
      if (!page.nextCursor) break;
      if (read >= limit) {
        truncated = true;
        break;
      }
      cursor = page.nextCursor;
    }
  }
  const events = [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return { events: events.slice(0, limit), truncated: truncated || events.length > limit };
}

/** One event as the person gets it: someone else acting is named by kind only. */
function exportedEvent(event: AuditEvent, accountId: string) {
  const self = event.actor.type === 'account' && event.actor.id === accountId;
  return {
    at: event.at.toISOString(),
    action: event.action,
    outcome: event.outcome,
    by: self ? 'you' : event.actor.type === 'account' ? 'another account (an administrator)' : event.actor.type,
    app: event.clientId,
    ip: self ? event.ip : undefined,
    userAgent: self ? event.userAgent : undefined,
    reason: event.reason,
    details: event.details,
  };
}

export function registerDataExportPages(router: AccountRouter, kit: AccountKit, deps: DataExportPagesDeps): void {
  const { access, audit, totp, now = Date.now } = deps;

  const buildExport = async (ctx: AccountContext) => {
    const { account } = ctx.state;
    const [status, sessions, apps, audited] = await Promise.all([
      totp.status(account.id),
      access.listSessions(account.id),
      access.listApps(account.id),
      auditEventsOf(audit, account.id, AUDIT_EXPORT_LIMIT),
    ]);
    return {
      exportedAt: new Date(now()).toISOString(),
      account: {
        id: account.id,
        email: account.email,
        emailVerified: account.emailVerified,
        name: account.name ?? null,
        // The standard claims apps may be given (given_name, picture, phone_number, address…).
        profile: account.profile,
        roles: account.roles,
        createdAt: account.createdAt.toISOString(),
        updatedAt: account.updatedAt.toISOString(),
        signIn: {
          password: account.hasPassword,
          authenticatorApp: status.enabled,
          authenticatorAppSince: status.enabledAt?.toISOString() ?? null,
          recoveryCodesLeft: status.recoveryCodesLeft,
        },
      },
      sessions: sessions.map((s) => ({
        uid: s.uid,
        current: s.uid === ctx.state.sessionUid,
        startedAt: s.startedAt?.toISOString() ?? null,
        lastSeenAt: s.lastSeenAt?.toISOString() ?? null,
        expiresAt: s.expiresAt?.toISOString() ?? null,
        ip: s.ip ?? null,
        userAgent: s.userAgent ?? null,
        device: s.device,
        signInMethods: s.amr,
        apps: s.apps.map((app) => ({ clientId: app.clientId, name: app.name })),
      })),
      connectedApps: apps.map((app) => ({ clientId: app.clientId, name: app.name, scopes: app.scopes, claims: app.claims, since: app.since?.toISOString() ?? null })),
      auditEvents: audited.events.map((event) => exportedEvent(event, account.id)),
      auditEventsTruncated: audited.truncated,
    };
  };

  router.get('/data', ...kit.sensitivePage('data'), async function showData(ctx) {
    await kit.render(ctx, 'account/data', 'data', { title: 'Your data', auditLimit: AUDIT_EXPORT_LIMIT });
  });

  router.post('/data', ...kit.sensitivePost('data'), async function download(ctx) {
    const { account } = ctx.state;
    const data = await buildExport(ctx);
    kit.log(ctx).info('account data exported', { accountId: account.id, auditEvents: data.auditEvents.length });
    await kit.audit(ctx, 'user.data_exported', 'success', { details: { auditEvents: data.auditEvents.length, sessions: data.sessions.length, apps: data.connectedApps.length } });
    const day = new Date(now()).toISOString().slice(0, 10);
    ctx.status = 200;
    ctx.type = 'application/json; charset=utf-8';
    ctx.set('Content-Disposition', `attachment; filename="account-data-${day}.json"`);
    ctx.body = `${JSON.stringify(data, null, 2)}\n`;
  });
}
