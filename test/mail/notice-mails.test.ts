/**
 * Notice mails (src/accounts/account-notices.service.ts), as they arrive at a real SMTP server
 * through the outbox: each says what happened, when (UTC), from which device and IP, and what to
 * do if it was not the owner; none carries a code or a token, and each subject names only the
 * product and the event. Then what administrators do to a person (MFA reset, deletion) mails them.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccountView } from '../../src/accounts/account.service.js';
import { fullAuthority } from '../../src/clients/admin-authority.js';
import { runWithRequest } from '../../src/http/request-context.js';
import type { MailServer, ReceivedMail } from '../support/mail-server.js';
import { codeForStep, clearOfStepEnd } from '../support/second-factor.js';
import { startMailingServer, stopMailingServer } from '../support/sign-in-suite.js';
import type { TestServer } from '../support/test-server.js';

const PASSWORD = 'correct horse battery staple 7';
const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';
const SAFARI_IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const AT = new Date('2026-12-02T22:40:31Z');
const AT_TEXT = '2 December 2026 at 22:40 UTC';
const FROM = { at: AT, ip: '203.0.113.7', userAgent: FIREFOX_LINUX };

/** No one-time code, no token-shaped string, in any part of a notice. */
function expectNoSecret(mail: ReceivedMail): void {
  // The HTML without its inline styles, and the test's addresses (neither is a secret).
  const html = mail.html.replace(/style="[^"]*"/g, '');
  const addresses = /[^\s<>"]+@example\.com/g;
  for (const part of [mail.subject, mail.text, html].map((p) => p.replace(addresses, 'ADDRESS'))) {
    expect(part).not.toMatch(/(?<![\d.])\d{6,}(?![\d.])/);
    expect(part).not.toMatch(/[A-Za-z0-9_-]{20,}/);
    expect(part).not.toMatch(/[?&](?:token|code|grant)=/i);
  }
}

describe('notice mails', () => {
  let server: TestServer;
  let smtp: MailServer;
  let product: string;
  let issuer: string;

  beforeAll(async () => {
    ({ server, smtp } = await startMailingServer('notice_mails'));
    product = server.config.productName;
    issuer = server.config.issuer;
  });

  afterAll(() => stopMailingServer({ server, smtp }));

  const person = async (name: string): Promise<AccountView> => server.deps.accounts.create({ email: `${name}@example.com`, password: PASSWORD, name });

  /** Runs `send` and returns the next mail to `to`. */
  async function mailFrom(to: string, send: () => Promise<unknown>): Promise<ReceivedMail> {
    const before = smtp.countFor(to);
    await send();
    return smtp.waitForMail(to, { after: before });
  }

  it.each([
    ['password changed', (a: AccountView) => server.deps.notices.passwordChanged(a, { from: FROM }), `Your PRODUCT password was changed`, /The PRODUCT password of EMAIL was changed\./, /If it was not you, reset your password now/],
    ['password set', (a: AccountView) => server.deps.notices.passwordChanged(a, { set: true, from: FROM }), `Your PRODUCT password was changed`, /A password was set for the PRODUCT account of EMAIL/, /If it was not you, reset your password now/],
    ['app added', (a: AccountView) => server.deps.notices.secondFactorAdded(a, 'totp', { from: FROM }), `Two-step verification was changed on your PRODUCT account`, /authenticator app was turned on/, /someone knows your password and signed in/],
    ['recovery codes made', (a: AccountView) => server.deps.notices.secondFactorAdded(a, 'recovery_codes', { from: FROM }), `Two-step verification was changed on your PRODUCT account`, /New recovery codes were made/, /someone knows your password and signed in/],
    ['app removed by the person', (a: AccountView) => server.deps.notices.secondFactorRemoved(a, 'totp', { from: FROM }), `Two-step verification was removed from your PRODUCT account`, /Someone signed in to the account turned off two-step verification/, /If you did not expect this, reset your password now/],
    ['recovery code used, 3 left', (a: AccountView) => server.deps.notices.recoveryCodeUsed(a, 3, { from: FROM }), `A recovery code was used on your PRODUCT account`, /3 recovery codes are left/, /someone has your password and one of your recovery codes/],
    ['recovery code used, none left', (a: AccountView) => server.deps.notices.recoveryCodeUsed(a, 0, { from: FROM }), `A recovery code was used on your PRODUCT account`, /No recovery codes are left/, /someone has your password/],
    ['new sign-in', (a: AccountView) => server.deps.notices.newSignIn(a, { clientName: 'Notes', from: FROM }), `New sign-in to your PRODUCT account`, /from a browser it had not used before, to use Notes\./, /If it was not you, reset your password now/],
    ['account deleted by the person', (a: AccountView) => server.deps.notices.accountDeleted(a, { from: FROM }), `Your PRODUCT account was deleted`, /Someone signed in to the account deleted the PRODUCT account of EMAIL/, /contact your administrator right away/],
  ] as const)('%s: the event, when, device and IP, what to do; no secret', async (label, send, subject, happened, advice) => {
    const account = await person(`n-${label.replace(/[^a-z]+/g, '-')}`);
    const fill = (pattern: RegExp) => new RegExp(pattern.source.replaceAll('PRODUCT', product).replaceAll('EMAIL', account.email.replace('.', '\\.')));
    const mail = await mailFrom(account.email, () => send(account));
    expect(mail.to).toEqual([account.email]);
    // The subject: the product and the event, nothing else.
    expect(mail.subject).toBe(subject.replace('PRODUCT', product));
    // The HTML part as read (tags out: a sentence may have a <strong> in it).
    for (const part of [mail.text, mail.html.replace(/<[^>]+>/g, '')]) {
      expect(part).toMatch(fill(happened));
      expect(part).toContain(AT_TEXT);
      expect(part).toContain('Firefox on Linux');
      expect(part).toContain('203.0.113.7');
      expect(part).toMatch(advice);
    }
    // The raw user agent is not repeated (a label only).
    expect(mail.text).not.toContain('Gecko/20100101');
    expectNoSecret(mail);
  });

  it('email changed: the notice goes to the OLD address, with the reset page and the administrator, and no token', async () => {
    const account = await person('moved');
    const moved = { ...account, email: 'moved-elsewhere@example.com' };
    const mail = await mailFrom('moved@example.com', () => server.deps.notices.emailChanged(moved, 'moved@example.com', { from: FROM }));
    expect(mail.to).toEqual(['moved@example.com']);
    expect(smtp.countFor('moved-elsewhere@example.com')).toBe(0);
    expect(mail.subject).toBe(`Your ${product} email address was changed`);
    expect(mail.text).toContain('The ' + product + ' account that used moved@example.com now uses another email address');
    expect(mail.text).toContain('contact your administrator right away');
    expect(mail.text).toContain(`${issuer}/password-reset`);
    expect(mail.html).toContain(`href="${issuer}/password-reset"`);
    // Not the new address either: it belongs to whoever made the change.
    expect(mail.text).not.toContain('moved-elsewhere');
    expect(mail.text).toContain(AT_TEXT);
    expect(mail.text).toContain('Firefox on Linux');
    expectNoSecret(mail);
  });

  it('from the current request by default: its user agent and IP', async () => {
    const account = await person('current');
    const mail = await mailFrom(account.email, () =>
      runWithRequest({ requestId: 'r1', ip: '198.51.100.23', userAgent: SAFARI_IPHONE, method: 'POST', path: '/x' }, () => server.deps.notices.passwordChanged(account)),
    );
    expect(mail.text).toContain('Safari on iOS');
    expect(mail.text).toContain('198.51.100.23');
    expect(mail.text).toMatch(/When: +\d{1,2} [A-Z][a-z]+ \d{4} at \d{2}:\d{2} UTC/);
  });

  it('outside any request: an unknown device and IP, said so', async () => {
    const account = await person('nowhere');
    const mail = await mailFrom(account.email, () => server.deps.notices.secondFactorAdded(account, 'totp'));
    expect(mail.text).toMatch(/Device: +Unknown device/);
    expect(mail.text).toMatch(/IP address: +Unknown/);
  });

  it('queued in the outbox by the call (the worker sends it), and a queueing failure never fails the caller', async () => {
    const account = await person('queued');
    const before = await server.deps.db.collection('mail_outbox').countDocuments({ to: account.email });
    await server.deps.notices.newSignIn(account, { from: FROM });
    // Queued (the worker sends it moments later).
    expect(await server.deps.db.collection('mail_outbox').countDocuments({ to: account.email })).toBe(before + 1);
    await smtp.waitForMail(account.email);
    // Locals the template refuses (an address too short to be one) are logged, not thrown.
    await expect(server.deps.notices.passwordChanged({ ...account, email: 'x' })).resolves.toBeUndefined();
    expect(server.logs.some((line) => line.includes('notice not queued') && line.includes('password-changed'))).toBe(true);
  });

  describe('what an administrator does to a person', () => {
    const admin = () => fullAuthority({ type: 'account', id: 'admin-1', label: 'root@example.com' });

    async function enrolled(name: string): Promise<AccountView> {
      const account = await person(name);
      const enrolment = await server.deps.totp.beginEnrolment(account);
      const step = await clearOfStepEnd();
      const activated = await server.deps.totp.activate(account.id, await codeForStep(enrolment.secret, step), enrolment.sealed);
      expect(activated.ok).toBe(true);
      return account;
    }

    it('an MFA reset mails "removed by an administrator", without the administrator’s device or IP', async () => {
      const account = await enrolled('reset-by-admin');
      const mail = await mailFrom(account.email, () =>
        runWithRequest({ requestId: 'r2', ip: '192.0.2.99', userAgent: FIREFOX_LINUX, method: 'POST', path: '/admin/users' }, () => server.deps.userAdmin.resetMfa(account.id, admin())),
      );
      expect(mail.subject).toBe(`Two-step verification was removed from your ${product} account`);
      expect(mail.text).toContain('An administrator turned off two-step verification');
      expect(mail.text).not.toContain('192.0.2.99');
      expect(mail.text).not.toContain('Firefox');
      expect(mail.text).toMatch(/Device: +An administrator/);
      expect(mail.text).toContain(`${issuer}/account/security`);
      expectNoSecret(mail);
    });

    it('an MFA reset of an account without a second factor sends nothing', async () => {
      const account = await person('nothing-to-reset');
      await server.deps.userAdmin.resetMfa(account.id, admin());
      expect(await server.deps.db.collection('mail_outbox').countDocuments({ to: account.email })).toBe(0);
    });

    it('a deletion mails the address it was, by an administrator; a refused deletion mails nothing', async () => {
      const account = await person('deleted-by-admin');
      // Refused: an administrator may not delete themselves; nothing is sent.
      await expect(server.deps.userAdmin.delete(account.id, fullAuthority({ type: 'account', id: account.id, label: account.email }))).rejects.toMatchObject({ status: expect.any(Number) });
      expect(await server.deps.db.collection('mail_outbox').countDocuments({ to: account.email })).toBe(0);

      const mail = await mailFrom(account.email, () => server.deps.userAdmin.delete(account.id, admin()));
      expect(mail.subject).toBe(`Your ${product} account was deleted`);
      expect(mail.text).toContain(`An administrator deleted the ${product} account of ${account.email}`);
      expect(mail.text).toContain('If you did not expect this, contact your administrator.');
      expect(mail.text).not.toContain('http');
      expectNoSecret(mail);
      // A second deletion finds no account and mails nothing.
      expect(await server.deps.userAdmin.delete(account.id, admin())).toBe(false);
      expect(await server.deps.db.collection('mail_outbox').countDocuments({ to: account.email })).toBe(1);
    });
  });
});
