/**
 * The audit log end to end: a real server, real mail (SMTP) and openid-client as the relying
 * party. Every event a sign-in, a second factor, a consent, a token, a sign-out, the security
 * page or a client registration causes lands once, with who, what, which client, the request's
 * IP and user agent and the outcome, and nothing in the audit collection is a credential.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import { fullAuthority } from '../../src/clients/admin-authority.js';
import type { AuditEvent } from '../../src/audit/audit.service.js';
import { AUDIT_COLLECTION } from '../../src/audit/audit.service.js';
import type { CreatedClient } from '../../src/clients/client.service.js';
import type { Clock } from '../../src/core/clock.js';
import { currentRequest } from '../../src/http/request-context.js';
import type { RequestInfo } from '../../src/http/request-context.js';
import { createTestClock } from '../support/clock.js';
import { waitForCodeMail } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { authorizationRequest, redeem, REDIRECT_URI, rpFor } from '../support/rp.js';
import type { Started } from '../support/rp.js';
import {
  freshTotp,
  pageKind,
  recoveryCodesFrom,
  requestSignInCode,
  secretFromEnrolPage,
  submit,
  wrongTotpCode,
} from '../support/second-factor.js';
import type { Authenticator } from '../support/second-factor.js';
import { createPlainAndMfaClients, startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';
import { formField, UserAgent } from '../support/user-agent.js';
import type { Reply } from '../support/user-agent.js';

const UA = 'AuditEventsTest/1.0 (+jest)';
const LOOPBACK = ['127.0.0.1', '::ffff:127.0.0.1'];
const PASSWORD = 'correct horse battery staple';
const WRONG_PASSWORD = 'incorrect pony battery staple';

/** The actions this file is about; events other parts of the server add are left out of the counts. */
const ACTIONS = new Set([
  'sign_in.password',
  'sign_in.email_code',
  'sign_in.email_code_requested',
  'mfa.totp',
  'mfa.recovery_code',
  'mfa.email_code',
  'mfa.password',
  'mfa.enrolled',
  'mfa.removed',
  'mfa.recovery_codes_regenerated',
  'consent.granted',
  'consent.denied',
  'token.issued',
  'token.revoked',
  'session.ended',
  'client.registered',
  'client.registration_updated',
  'client.registration_deleted',
]);

/** A browser that names itself: every request carries our user agent. */
class Browser extends UserAgent {
  override request(url: string, init: RequestInit = {}): Promise<Reply> {
    const headers = new Headers(init.headers);
    headers.set('user-agent', UA);
    return super.request(url, { ...init, headers });
  }
}

/** A code for the next step the server will take (by `clock`, the server's), counted as used from now on. */
async function nextTotp(auth: Authenticator, clock: Clock): Promise<string> {
  const { code, step } = await freshTotp(auth, clock);
  auth.lastStep = step;
  return code;
}

const wrongCode = (code: string) => (code === '000000' ? '111111' : '000000');

describe('audit events end to end', () => {
  let server: TestServer;
  let smtp: MailServer;
  let notes: CreatedClient;
  let bank: CreatedClient;
  let notesRp: oidc.Configuration;
  let bankRp: oidc.Configuration;
  /** Every credential the tests use or receive: none may appear in the audit collection. */
  const secrets = new Set<string>();
  let userCount = 0;
  let mark: string | undefined;
  // The services' clock: a TOTP code for a step after the one just used is had by moving it, not
  // by waiting up to 30 s for the next step.
  const clock = createTestClock();

  const keep = (...values: (string | undefined)[]) => {
    for (const value of values) if (value) secrets.add(value);
  };

  const newUser = async (label: string, options: { password?: boolean } = {}) => {
    userCount += 1;
    const email = `audit-${label}-${userCount}@example.com`;
    const account = await server.deps.accounts.create(options.password === false ? { email } : { email, password: PASSWORD });
    return { id: account.id, email, password: PASSWORD };
  };

  /** openid-client with our user agent on every request it makes. */
  const rpWithUa = async (client: CreatedClient): Promise<oidc.Configuration> => {
    const rp = await rpFor(server, client);
    rp[oidc.customFetch] = (url, options) => {
      const headers = new Headers(options.headers);
      headers.set('user-agent', UA);
      return fetch(url, { ...(options as RequestInit), headers });
    };
    return rp;
  };

  /** This test's events, oldest first, limited to the actions above. */
  const newEvents = async (): Promise<AuditEvent[]> => {
    await server.deps.audit.flush();
    const { events } = await server.deps.audit.list({}, { limit: 500 });
    return events.filter((e) => (mark === undefined || e.id > mark) && ACTIONS.has(e.action)).reverse();
  };
  const summary = (events: AuditEvent[]) => events.map((e) => `${e.action} ${e.outcome}`);

  const expectFromTheBrowser = (events: AuditEvent[]) => {
    for (const event of events) {
      expect({ action: event.action, ip: LOOPBACK.includes(event.ip ?? '') ? 'loopback' : event.ip, userAgent: event.userAgent }).toEqual({
        action: event.action,
        ip: 'loopback',
        userAgent: UA,
      });
      expect(event.at.getTime()).toBeGreaterThan(clock.nowMs() - 5 * 60_000);
      expect(event.at.getTime()).toBeLessThanOrEqual(clock.nowMs());
    }
  };

  const accountRef = (user: { id: string; email: string }) => ({ type: 'account', id: user.id, label: user.email });

  const loginPage = async (agent: UserAgent, rp: oidc.Configuration, extra: Record<string, string> = {}): Promise<{ started: Started; page: Reply }> => {
    const started = await authorizationRequest(rp, { scope: 'openid email', ...extra });
    const page = await agent.follow(started.url.toString());
    expect(pageKind(page)).toBe('login');
    return { started, page };
  };

  /** The sign-in code step, with the code read from the mail and a wrong one first when asked. */
  const signInWithCode = async (agent: UserAgent, login: Reply, email: string, options: { wrongFirst?: boolean } = {}): Promise<Reply> => {
    const { page, code } = await requestSignInCode(agent, login, email, smtp);
    keep(code);
    expect(pageKind(page)).toBe('email-code');
    let current = page;
    if (options.wrongFirst) {
      current = await submit(agent, current, '/email-code/verify', { code: wrongCode(code) });
      expect(current.status).toBe(401);
    }
    return submit(agent, current, '/email-code/verify', { code });
  };

  const consent = async (agent: UserAgent, page: Reply): Promise<Reply> => {
    expect(pageKind(page)).toBe('consent');
    const callback = await submit(agent, page, '/confirm');
    expect(callback.location?.startsWith(REDIRECT_URI)).toBe(true);
    return callback;
  };

  beforeAll(async () => {
    // One account asks for several sign-in codes in a row here.
    ({ server, smtp } = await startMailingServer('audit_events', { DYNAMIC_REGISTRATION: 'true', EMAIL_CODE_RESEND_INTERVAL: '0' }, { clock }));
    ({ client: notes, mfaClient: bank, rp: notesRp, mfaRp: bankRp } = await createPlainAndMfaClients(server, rpWithUa));
    keep(notes.clientSecret, bank.clientSecret);
  });

  beforeEach(async () => {
    await server.deps.audit.flush();
    mark = (await server.deps.audit.list({}, { limit: 1 })).events[0]?.id;
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  it('password sign-in failures and success, consent, tokens issued, refreshed and revoked, sign-out: each once', async () => {
    const user = await newUser('password');
    const unknownEmail = `nobody-${Date.now()}@example.com`;
    keep(PASSWORD, WRONG_PASSWORD, unknownEmail);
    const agent = new Browser(server.url);
    const { started, page: login } = await loginPage(agent, notesRp, { scope: 'openid email offline_access', prompt: 'consent' });

    const wrong = await submit(agent, login, '/login', { email: user.email, password: WRONG_PASSWORD });
    expect(wrong.status).toBe(401);
    const unknown = await submit(agent, wrong, '/login', { email: unknownEmail, password: PASSWORD });
    expect(unknown.status).toBe(401);
    const consentPage = await submit(agent, unknown, '/login', { email: user.email, password: user.password });
    const callback = await consent(agent, consentPage);

    // The provider's listeners run inside the request's context (AsyncLocalStorage), model
    // events included: what they see is what the audit events below carry.
    let seenByListener: RequestInfo | undefined;
    server.deps.provider.once('grant.success', () => {
      seenByListener = currentRequest();
    });
    const tokens = await redeem(notesRp, started, callback);
    expect(seenByListener).toMatchObject({ userAgent: UA, method: 'POST', path: '/token' });
    const refreshed = await oidc.refreshTokenGrant(notesRp, tokens.refresh_token!);
    keep(tokens.access_token, tokens.refresh_token, tokens.id_token, refreshed.access_token, refreshed.refresh_token, refreshed.id_token);

    // RFC 7009: revoking the access token. NOTE: the provider then revokes every token of its
    // grant (the refresh token too), so a token already gone revokes nothing and records nothing.
    await oidc.tokenRevocation(notesRp, refreshed.access_token, { token_type_hint: 'access_token' });
    await oidc.tokenRevocation(notesRp, refreshed.refresh_token ?? tokens.refresh_token!, { token_type_hint: 'refresh_token' });
    await expect(oidc.refreshTokenGrant(notesRp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    // A second authorization in the same session, then revoking its refresh token (grant and all).
    const again = await authorizationRequest(notesRp, { scope: 'openid email offline_access', prompt: 'consent' });
    const second = await redeem(notesRp, again, await consent(agent, await agent.follow(again.url.toString())));
    keep(second.access_token, second.refresh_token, second.id_token);
    await oidc.tokenRevocation(notesRp, second.refresh_token!, { token_type_hint: 'refresh_token' });
    await oidc.tokenRevocation(notesRp, second.access_token, { token_type_hint: 'access_token' });

    // Sign-out through the end-session page (which also revokes the session's grants).
    const logout = await agent.get(`${server.url}/session/end`);
    expect(logout.status).toBe(200);
    const action = /<form method="post" action="([^"]+)"/.exec(logout.body)?.[1];
    const confirmed = await agent.post(new URL(action!.replace(/&amp;/g, '&'), server.url).toString(), { xsrf: formField(logout.body, 'xsrf'), logout: 'yes' });
    expect(confirmed.status).toBe(303);

    const events = await newEvents();
    expect(summary(events)).toEqual([
      'sign_in.password failure',
      'sign_in.password failure',
      'sign_in.password success',
      'consent.granted success',
      'token.issued success',
      'token.issued success',
      'token.revoked success',
      'consent.granted success',
      'token.issued success',
      'token.revoked success',
      'session.ended success',
    ]);
    expectFromTheBrowser(events);
    const [wrongPassword, unknownAccount, accepted, granted, issued, refreshIssued, revokedAccess, , , revokedRefresh, ended] = events as AuditEvent[] as [
      AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent, AuditEvent,
    ];
    expect(wrongPassword).toMatchObject({ actor: accountRef(user), target: accountRef(user), clientId: notes.clientId, reason: 'wrong_password' });
    // An unknown address: anonymous, and the address is nowhere in the event.
    expect(unknownAccount.actor).toEqual({ type: 'anonymous' });
    expect(unknownAccount).toMatchObject({ clientId: notes.clientId, reason: 'unknown_account' });
    expect(unknownAccount.target).toBeUndefined();
    expect(accepted).toMatchObject({ actor: accountRef(user), target: accountRef(user), clientId: notes.clientId });
    expect(accepted.reason).toBeUndefined();
    expect(granted).toMatchObject({ actor: { type: 'account', id: user.id }, target: { type: 'client', id: notes.clientId, label: 'Notes' }, clientId: notes.clientId });
    expect(granted.details?.scopes).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access']));
    expect(issued).toMatchObject({
      actor: { type: 'client', id: notes.clientId, label: 'Notes' },
      target: { type: 'account', id: user.id },
      clientId: notes.clientId,
      details: { grantType: 'authorization_code', tokenTypes: ['access_token', 'refresh_token', 'id_token'] },
    });
    expect(refreshIssued).toMatchObject({ clientId: notes.clientId, target: { type: 'account', id: user.id }, details: { grantType: 'refresh_token' } });
    expect(refreshIssued.details?.tokenTypes).toEqual(expect.arrayContaining(['access_token']));
    // From `access_token.destroyed` / `refresh_token.destroyed`, model events without a ctx: the
    // IP and user agent checked above came through the request context.
    expect(revokedAccess).toMatchObject({
      actor: { type: 'client', id: notes.clientId },
      target: { type: 'account', id: user.id },
      clientId: notes.clientId,
      details: { tokenType: 'access_token', grantId: issued.details?.grantId, grantTokensRevoked: true },
    });
    expect(revokedRefresh).toMatchObject({
      actor: { type: 'client', id: notes.clientId },
      target: { type: 'account', id: user.id },
      clientId: notes.clientId,
      details: { tokenType: 'refresh_token', grantTokensRevoked: true },
    });
    expect(ended).toMatchObject({ actor: { type: 'account', id: user.id }, target: { type: 'session' } });
  });

  it('a reused refresh token revokes the grant: one token.revoked, by the system', async () => {
    const user = await newUser('replay');
    const publicClient = await server.deps.clients.create({ name: 'Public app', redirectUris: [REDIRECT_URI], public: true });
    const rp = await rpWithUa(publicClient);
    const agent = new Browser(server.url);
    const { started, page } = await loginPage(agent, rp, { scope: 'openid offline_access', prompt: 'consent' });
    const callback = await consent(agent, await submit(agent, page, '/login', { email: user.email, password: user.password }));
    const tokens = await redeem(rp, started, callback);
    const rotated = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    keep(tokens.access_token, tokens.refresh_token, tokens.id_token, rotated.access_token, rotated.refresh_token, rotated.id_token);
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const events = await newEvents();
    expect(summary(events)).toEqual(['sign_in.password success', 'consent.granted success', 'token.issued success', 'token.issued success', 'token.revoked success']);
    expectFromTheBrowser(events);
    expect(events[4]).toMatchObject({
      actor: { type: 'system' },
      target: { type: 'account', id: user.id },
      clientId: publicClient.clientId,
      details: { tokenType: 'grant', trigger: 'refresh_token_replayed' },
    });
  });

  it('consent denied', async () => {
    const user = await newUser('deny');
    const agent = new Browser(server.url);
    const { page } = await loginPage(agent, notesRp, { prompt: 'consent' });
    const consentPage = await submit(agent, page, '/login', { email: user.email, password: user.password });
    expect(pageKind(consentPage)).toBe('consent');
    const denied = await submit(agent, consentPage, '/abort');
    expect(new URL(denied.location!).searchParams.get('error')).toBe('access_denied');

    const events = await newEvents();
    expect(summary(events)).toEqual(['sign_in.password success', 'consent.denied success']);
    expectFromTheBrowser(events);
    expect(events[1]).toMatchObject({ actor: { type: 'account', id: user.id }, target: { type: 'client', id: notes.clientId }, clientId: notes.clientId });
  });

  it('sign-in by emailed code: requested, refused, accepted; unknown addresses stay anonymous', async () => {
    const user = await newUser('code');
    const agent = new Browser(server.url);
    const { page } = await loginPage(agent, notesRp);
    const next = await signInWithCode(agent, page, user.email, { wrongFirst: true });
    await consent(agent, next);

    const unknownEmail = `stranger-${Date.now()}@example.com`;
    keep(unknownEmail);
    const stranger = new Browser(server.url);
    const { page: strangerLogin } = await loginPage(stranger, notesRp);
    const codePage = await submit(stranger, strangerLogin, '/email-code', { email: unknownEmail });
    expect(pageKind(codePage)).toBe('email-code');
    const refused = await submit(stranger, codePage, '/email-code/verify', { code: '123456' });
    expect(refused.status).toBe(401);

    const events = await newEvents();
    expect(summary(events)).toEqual([
      'sign_in.email_code_requested success',
      'sign_in.email_code failure',
      'sign_in.email_code success',
      'consent.granted success',
      'sign_in.email_code_requested success',
      'sign_in.email_code failure',
    ]);
    expectFromTheBrowser(events);
    const [requested, wrong, accepted, , strangerRequested, strangerRefused] = events as AuditEvent[];
    expect(requested).toMatchObject({ actor: accountRef(user), target: accountRef(user), clientId: notes.clientId });
    expect(wrong).toMatchObject({ actor: accountRef(user), clientId: notes.clientId, reason: 'code_invalid' });
    expect(accepted).toMatchObject({ actor: accountRef(user), target: accountRef(user), clientId: notes.clientId });
    for (const event of [strangerRequested, strangerRefused]) {
      expect(event?.actor).toEqual({ type: 'anonymous' });
      expect(event?.target).toBeUndefined();
      expect(event?.clientId).toBe(notes.clientId);
    }
    expect(strangerRefused?.reason).toBe('unknown_account');
  });

  it('second factors by email and by password, wrong then right', async () => {
    const user = await newUser('mfa');
    keep(PASSWORD, WRONG_PASSWORD);
    // Password first; the client requires a second factor: a code by email.
    const agent = new Browser(server.url);
    const { page } = await loginPage(agent, bankRp);
    const before = smtp.countFor(user.email);
    const codePage = await submit(agent, page, '/login', { email: user.email, password: user.password });
    expect(pageKind(codePage)).toBe('email-code');
    const code = (await waitForCodeMail(smtp, user.email, { after: before })).code;
    keep(code);
    const refused = await submit(agent, codePage, '/second-factor/email', { code: wrongCode(code) });
    expect(refused.status).toBe(401);
    await consent(agent, await submit(agent, refused, '/second-factor/email', { code }));

    // A code by email first; then the password is the second factor.
    const second = new Browser(server.url);
    const { page: login } = await loginPage(second, bankRp);
    const passwordPage = await signInWithCode(second, login, user.email);
    expect(pageKind(passwordPage)).toBe('password');
    const wrong = await submit(second, passwordPage, '/second-factor/password', { password: WRONG_PASSWORD });
    expect(wrong.status).toBe(401);
    await consent(second, await submit(second, wrong, '/second-factor/password', { password: user.password }));

    const events = await newEvents();
    expect(summary(events)).toEqual([
      'sign_in.password success',
      'mfa.email_code failure',
      'mfa.email_code success',
      'consent.granted success',
      'sign_in.email_code_requested success',
      'sign_in.email_code success',
      'mfa.password failure',
      'mfa.password success',
      'consent.granted success',
    ]);
    expectFromTheBrowser(events);
    for (const event of events) expect(event.clientId).toBe(bank.clientId);
    for (const event of events.filter((e) => e.action.startsWith('mfa.'))) expect(event).toMatchObject({ actor: accountRef(user), target: accountRef(user) });
    expect(events[1]?.reason).toBe('code_invalid');
    expect(events[6]?.reason).toBe('wrong_password');
  });

  it('authenticator enrolment during sign-in, then TOTP and recovery codes as second factors', async () => {
    // Passwordless, signing in by email to a client that needs a second factor: enrolment.
    const user = await newUser('totp', { password: false });
    const agent = new Browser(server.url);
    const { page } = await loginPage(agent, bankRp);
    const enrol = await signInWithCode(agent, page, user.email);
    expect(pageKind(enrol)).toBe('enrol');
    const refusedEnrol = await submit(agent, enrol, '/second-factor/enrol', { code: await wrongTotpCode(secretFromEnrolPage(enrol.body), clock) });
    expect(refusedEnrol.status).toBe(401);
    const auth: Authenticator = { secret: secretFromEnrolPage(refusedEnrol.body), lastStep: 0 };
    keep(auth.secret);
    const enrolCode = await nextTotp(auth, clock);
    keep(enrolCode);
    const codesPage = await submit(agent, refusedEnrol, '/second-factor/enrol', { code: enrolCode });
    expect(pageKind(codesPage)).toBe('recovery-codes');
    const recoveryCodes = recoveryCodesFrom(codesPage.body);
    keep(...recoveryCodes);
    await consent(agent, await submit(agent, codesPage, '/second-factor/continue'));

    // TOTP as the second factor (the account has an authenticator now).
    const second = new Browser(server.url);
    const { page: login } = await loginPage(second, notesRp);
    const totpPage = await signInWithCode(second, login, user.email);
    expect(pageKind(totpPage)).toBe('totp');
    const wrongTotpPage = await submit(second, totpPage, '/second-factor/totp', { code: await wrongTotpCode(auth.secret, clock) });
    expect(wrongTotpPage.status).toBe(401);
    const totpCode = await nextTotp(auth, clock);
    keep(totpCode);
    await consent(second, await submit(second, wrongTotpPage, '/second-factor/totp', { code: totpCode }));

    // A recovery code instead.
    const third = new Browser(server.url);
    const { page: thirdLogin } = await loginPage(third, notesRp);
    const thirdTotp = await signInWithCode(third, thirdLogin, user.email);
    const recoveryPage = await third.get(`${thirdTotp.url}?method=recovery`);
    expect(pageKind(recoveryPage)).toBe('recovery');
    const wrongRecovery = await submit(third, recoveryPage, '/second-factor/recovery', { code: 'zzzz-zzzz-zzzz' });
    expect(wrongRecovery.status).toBe(401);
    const codesLeft = await submit(third, wrongRecovery, '/second-factor/recovery', { code: recoveryCodes[0]! });
    await consent(third, await submit(third, codesLeft, '/second-factor/recovery/continue'));

    const events = await newEvents();
    expect(summary(events)).toEqual([
      'sign_in.email_code_requested success',
      'sign_in.email_code success',
      'mfa.enrolled failure',
      'mfa.enrolled success',
      'consent.granted success',
      'sign_in.email_code_requested success',
      'sign_in.email_code success',
      'mfa.totp failure',
      'mfa.totp success',
      'consent.granted success',
      'sign_in.email_code_requested success',
      'sign_in.email_code success',
      'mfa.recovery_code failure',
      'mfa.recovery_code success',
      'consent.granted success',
    ]);
    expectFromTheBrowser(events);
    for (const event of events.filter((e) => e.action.startsWith('mfa.'))) expect(event).toMatchObject({ actor: accountRef(user), target: accountRef(user) });
    expect(events.slice(0, 5).every((e) => e.clientId === bank.clientId)).toBe(true);
    expect(events.slice(5).every((e) => e.clientId === notes.clientId)).toBe(true);
    expect(events[2]).toMatchObject({ reason: 'code_invalid', details: { during: 'sign-in' } });
    expect(events[3]).toMatchObject({ details: { during: 'sign-in' } });
    expect(events[13]).toMatchObject({ details: { recoveryCodesLeft: 9 } });
  });

  it('the security page: enrol, new recovery codes and removal, each refused once and then done', async () => {
    const user = await newUser('security');
    keep(PASSWORD, WRONG_PASSWORD);
    const agent = new Browser(server.url);
    const login = await agent.follow(`${server.url}/account/security`);
    const security = await submit(agent, login, '/login', { email: user.email, password: user.password });
    expect(security.url).toBe(`${server.url}/account/security`);

    const enrol = await agent.follow(`${server.url}/account/security/totp`);
    expect(pageKind(enrol)).toBe('enrol');
    const refused = await submit(agent, enrol, '/account/security/totp', { code: await wrongTotpCode(secretFromEnrolPage(enrol.body), clock) });
    expect(refused.status).toBe(401);
    const auth: Authenticator = { secret: secretFromEnrolPage(refused.body), lastStep: 0 };
    const enrolCode = await nextTotp(auth, clock);
    keep(auth.secret, enrolCode);
    const codes = await submit(agent, refused, '/account/security/totp', { code: enrolCode });
    expect(pageKind(codes)).toBe('recovery-codes');
    keep(...recoveryCodesFrom(codes.body));
    const page = await submit(agent, codes, '/account/security/done');

    const wrongRegenerate = await submit(agent, page, '/account/security/recovery-codes', { code: await wrongTotpCode(auth.secret, clock) });
    expect(wrongRegenerate.status).toBe(401);
    const regenerateCode = await nextTotp(auth, clock);
    keep(regenerateCode);
    const newCodes = await submit(agent, wrongRegenerate, '/account/security/recovery-codes', { code: regenerateCode });
    expect(pageKind(newCodes)).toBe('recovery-codes');
    keep(...recoveryCodesFrom(newCodes.body));
    const back = await submit(agent, newCodes, '/account/security/done');

    const wrongRemove = await submit(agent, back, '/account/security/totp/remove', { password: WRONG_PASSWORD });
    expect(wrongRemove.status).toBe(401);
    const removed = await submit(agent, wrongRemove, '/account/security/totp/remove', { password: user.password });
    expect(removed.status).toBe(200);

    const events = await newEvents();
    expect(summary(events)).toEqual([
      'sign_in.password success',
      'mfa.enrolled failure',
      'mfa.enrolled success',
      'mfa.recovery_codes_regenerated failure',
      'mfa.recovery_codes_regenerated success',
      'mfa.removed failure',
      'mfa.removed success',
    ]);
    expectFromTheBrowser(events);
    expect(events[0]?.clientId).toBe('account-console');
    for (const event of events.slice(1)) {
      expect(event).toMatchObject({ actor: accountRef(user), target: accountRef(user), details: { during: 'account' } });
      expect(event.clientId).toBeUndefined();
    }
    expect(events.map((e) => e.reason)).toEqual([undefined, 'code_invalid', undefined, 'code_invalid', undefined, 'wrong_password', undefined]);
  });

  it('dynamic registration: registered (with an initial access token), updated and deleted', async () => {
    const iat = (await server.deps.registrationTokens.create({ uses: 1 })).token;
    keep(iat);
    const call = async (url: string, method: string, token: string, body?: unknown) => {
      const res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${token}`, 'user-agent': UA, accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, string> };
    };
    const created = await call(`${server.url}/reg`, 'POST', iat, { client_name: 'Registered RP', redirect_uris: [REDIRECT_URI] });
    expect(created.status).toBe(201);
    const { client_id: clientId, client_secret: clientSecret, registration_access_token: rat, registration_client_uri: uri } = created.body;
    keep(clientSecret, rat);
    const updated = await call(uri!, 'PUT', rat!, { client_id: clientId, client_name: 'Renamed RP', redirect_uris: [REDIRECT_URI] });
    expect(updated.status).toBe(200);
    const rotated = updated.body.registration_access_token;
    keep(rotated);
    const deleted = await call(uri!, 'DELETE', rotated ?? rat!);
    expect(deleted.status).toBe(204);

    const events = await newEvents();
    expect(summary(events)).toEqual(['client.registered success', 'client.registration_updated success', 'client.registration_deleted success']);
    expectFromTheBrowser(events);
    expect(events[0]).toMatchObject({ actor: { type: 'anonymous' }, target: { type: 'client', id: clientId, label: 'Registered RP' }, clientId, details: { initialAccessToken: 'used' } });
    expect(events[1]).toMatchObject({ actor: { type: 'client', id: clientId }, target: { type: 'client', id: clientId, label: 'Renamed RP' }, clientId });
    expect(events[2]).toMatchObject({ actor: { type: 'client', id: clientId }, target: { type: 'client', id: clientId }, clientId });
  });

  it('client credentials: a token issued to a service client and revoked by it', async () => {
    const service = await server.deps.clients.create(
      {
        name: 'Reporter',
        grantTypes: ['client_credentials'],
        redirectUris: [],
        tokenEndpointAuthMethod: 'client_secret_basic',
        scopes: ['admin:audit:read'],
      },
      // A client with a management API scope: only someone who holds it may make one.
      fullAuthority({ type: 'system', label: 'test setup' }),
    );
    keep(service.clientSecret);
    const rp = await rpWithUa(service);
    const tokens = await oidc.clientCredentialsGrant(rp, { scope: 'admin:audit:read', resource: server.config.adminApi.resource });
    keep(tokens.access_token);
    await oidc.tokenRevocation(rp, tokens.access_token);
    await oidc.tokenRevocation(rp, tokens.access_token);

    const events = await newEvents();
    expect(summary(events)).toEqual(['token.issued success', 'token.revoked success']);
    expectFromTheBrowser(events);
    const client = { type: 'client', id: service.clientId };
    expect(events[0]).toMatchObject({
      actor: { ...client, label: 'Reporter' },
      target: client,
      clientId: service.clientId,
      details: { grantType: 'client_credentials', tokenTypes: ['access_token'], scopes: ['admin:audit:read'] },
    });
    expect(events[1]).toMatchObject({ actor: client, target: client, clientId: service.clientId, details: { tokenType: 'client_credentials' } });
  });

  it('the audit collection holds no password, code, token, client secret or unknown address', async () => {
    await server.deps.audit.flush();
    const docs = await server.deps.db.collection<{ _id: string }>(AUDIT_COLLECTION).find({}).toArray();
    expect(docs.length).toBeGreaterThan(40);
    // `_id` is left out: it is a timestamp and a counter, where six digits of a code could turn up by chance.
    const raw = JSON.stringify(docs.map(({ _id, ...rest }) => rest));
    expect(secrets.size).toBeGreaterThan(30);
    for (const secret of secrets) {
      if (raw.includes(secret)) throw new Error(`a secret used in this test is in the audit log: ${secret.slice(0, 4)}…`);
    }
    // And nothing shaped like a JWT (ID tokens, JWT access tokens) under any key.
    expect(raw).not.toMatch(/eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\./);
  });
});
