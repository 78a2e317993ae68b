import type Provider from 'oidc-provider';
import { z } from 'zod';

import type { AccountAccessService, SessionView } from '../accounts/account-access.service.js';
import type { Config } from '../config/config.js';
import type { AccountContext, AccountKit, AccountRouter, RenderOptions } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';
import { endSessionUrl } from './sign-out.pages.js';
import { timeLabel } from './time-label.js';

/**
 * Where the account is signed in (/account/sessions): every live SSO session (browser and system
 * from its user agent, IP, when it started and was last used, the apps signed in through it), the
 * current one marked, and a way to sign each out, or all but this one.
 *
 * NOTE: no recent authentication for these (kit.post, not sensitivePost). Ending a session only
 * takes access away: someone holding a borrowed browser can do nothing with it but sign people
 * out, which the owner undoes by signing in; asking for a fresh sign-in would slow the owner down
 * exactly when they react to a lost device. CSRF still applies, and a uid counts only when it is
 * one of this account's sessions (access.endSession looks it up by uid and account).
 *
 * Ending the current session from here is signing out (sign-out.pages.ts): the provider's logout.
 */

const SESSIONS_PATH = ACCOUNT_SECTIONS.sessions.path;

/** A session's public handle as the provider makes them (nanoid); anything else is not one. */
const uidField = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);

const NOTICES: Record<string, string> = {
  ended: 'That session is signed out. Apps it signed in to need a new sign-in there.',
  others: 'Every other session is signed out. This browser stays signed in.',
  none: 'There were no other sessions to sign out.',
};

export interface SessionsPagesDeps {
  config: Pick<Config, 'issuer'>;
  provider: Provider;
  access: Pick<AccountAccessService, 'listSessions' | 'endSession' | 'endOtherSessions'>;
}

function sessionItem(session: SessionView, currentUid: string) {
  return {
    uid: session.uid,
    current: session.uid === currentUid,
    device: session.device,
    ip: session.ip,
    startedAt: timeLabel(session.startedAt),
    lastSeenAt: timeLabel(session.lastSeenAt),
    apps: session.apps.map((app) => app.name),
  };
}

export function registerSessionsPages(router: AccountRouter, kit: AccountKit, deps: SessionsPagesDeps): void {
  const { access } = deps;

  const renderSessions = async (ctx: AccountContext, options: RenderOptions = {}) => {
    const { account, sessionUid } = ctx.state;
    const sessions = (await access.listSessions(account.id)).map((session) => sessionItem(session, sessionUid));
    // This browser first, then the others as listed (most recently used first).
    sessions.sort((a, b) => Number(b.current) - Number(a.current));
    await kit.render(ctx, 'account/sessions', 'sessions', { title: 'Sessions', sessions, others: sessions.filter((s) => !s.current).length }, options);
  };

  router.get('/sessions', ...kit.page, async function showSessions(ctx) {
    const notice = typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined;
    await renderSessions(ctx, { notice });
  });

  router.post('/sessions/end', ...kit.post, async function endOne(ctx) {
    const { account, sessionUid } = ctx.state;
    const uid = uidField.safeParse(ctx.state.form.uid);
    if (!uid.success) return renderSessions(ctx, { error: 'Choose a session to sign out from the list.', status: 400 });
    if (uid.data === sessionUid) return kit.redirect(ctx, endSessionUrl(deps.provider, deps.config.issuer));
    const ended = await access.endSession(account.id, uid.data);
    if (!ended) {
      await kit.audit(ctx, 'session.revoked', 'failure', { reason: 'not_found', details: { uid: uid.data } });
      return renderSessions(ctx, { error: 'That session is already signed out, or it is not one of yours. The list below is up to date.', status: 404 });
    }
    kit.log(ctx).info('session revoked', { accountId: account.id, uid: uid.data });
    await kit.audit(ctx, 'session.revoked', 'success', { details: { uid: uid.data } });
    kit.redirect(ctx, `${SESSIONS_PATH}?done=ended`);
  });

  router.post('/sessions/end-others', ...kit.post, async function endOthers(ctx) {
    const { account, sessionUid } = ctx.state;
    // The uids named in the audit event: those listed now (a session started a moment later is
    // ended too, and counted in `ended`).
    const listed = (await access.listSessions(account.id)).map((s) => s.uid).filter((uid) => uid !== sessionUid);
    const ended = await access.endOtherSessions(account.id, sessionUid);
    kit.log(ctx).info('other sessions revoked', { accountId: account.id, ended });
    if (ended > 0) await kit.audit(ctx, 'session.revoked', 'success', { details: { uids: listed.slice(0, 50), ended, scope: 'all_others' } });
    kit.redirect(ctx, `${SESSIONS_PATH}?done=${ended > 0 ? 'others' : 'none'}`);
  });
}
