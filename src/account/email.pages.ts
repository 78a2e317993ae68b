import type { mongo } from 'mongoose';

import type { AccountAccessService } from '../accounts/account-access.service.js';
import type { AccountNotices } from '../accounts/account-notices.js';
import type { AccountService } from '../accounts/account.service.js';
import type { EmailCodeService } from '../accounts/email-code.service.js';
import { createEmailChangeService, emailChangeBinding } from '../accounts/email-change.service.js';
import type { CodeMailSender } from '../accounts/email-change.service.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import type { Logger } from '../logging/logger.js';
import { describeWait } from '../sign-in/messages.js';
import type { AccountContext, AccountKit, AccountRouter } from './account-kit.js';
import { ACCOUNT_SECTIONS } from './account-kit.js';

/**
 * The email page (/account/email): a new address, proven by a 6-digit code mailed to it
 * (email-change.service.ts says what is checked, counted and refused, and why the page says
 * nothing about other accounts before the code comes back). Both steps need a recent
 * authentication and a CSRF token; when the address changes, every other session of the account
 * ends, the old address gets a notice (with a way to report it), and the change is audited.
 * Successes answer with a redirect and a notice (post/redirect/get); refusals show the page again
 * with the field that failed marked.
 */

const EMAIL_PATH = ACCOUNT_SECTIONS.email.path;

type Field = 'email' | 'code';
type FieldErrors = Partial<Record<Field, string>>;

const DONE_NOTICES = {
  sent: 'Code sent. Look in the inbox of the new address.',
  changed: 'Your email address is changed. Sign in with the new address from now on. Every other browser signed in to your account was signed out.',
  cancelled: 'Nothing changed: you keep your current address.',
} as const;

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

export interface EmailPagesDeps {
  db: mongo.Db;
  accounts: AccountService;
  emailCodes: EmailCodeService;
  limits: SignInLimits;
  outbox: CodeMailSender;
  access: AccountAccessService;
  logger: Logger;
  notices: AccountNotices;
  now?: () => number;
}

export function registerEmailPages(router: AccountRouter, kit: AccountKit, deps: EmailPagesDeps): void {
  const { access, notices } = deps;
  const now = deps.now ?? Date.now;
  const emailChange = createEmailChangeService(deps);
  const bindingOf = (ctx: AccountContext) => emailChangeBinding(ctx.state.account.id, ctx.state.sessionUid);

  const render = async (ctx: AccountContext, options: { errors?: FieldErrors; error?: string; status?: number; notice?: string; typed?: string } = {}) => {
    const pending = await emailChange.pending(bindingOf(ctx));
    const errors = options.errors ?? {};
    // The code step while a code waits, unless the address itself was refused.
    const codeStep = pending && !errors.email ? pending : undefined;
    await kit.render(
      ctx,
      'account/email',
      'email',
      {
        title: 'Email address',
        pending: codeStep
          ? {
              email: codeStep.email,
              minutes: Math.max(1, Math.ceil((codeStep.expiresAt.getTime() - now()) / 60_000)),
              resendText: codeStep.resendAfterSeconds > 0 ? `You can ask for a new code in ${describeWait(codeStep.resendAfterSeconds)}.` : undefined,
            }
          : undefined,
        typed: options.typed ?? '',
        errors,
        action: EMAIL_PATH,
        verifyAction: `${EMAIL_PATH}/verify`,
        cancelAction: `${EMAIL_PATH}/cancel`,
      },
      { status: options.status, notice: options.notice, error: options.error },
    );
  };

  router.get('/email', ...kit.sensitivePage('email'), async function showEmail(ctx) {
    const done = text(ctx.query.done);
    await render(ctx, { notice: Object.hasOwn(DONE_NOTICES, done) ? DONE_NOTICES[done as keyof typeof DONE_NOTICES] : undefined });
  });

  router.post('/email', ...kit.sensitivePost('email'), async function requestChange(ctx) {
    const { account, form } = ctx.state;
    const typed = text(form.email).slice(0, 320);
    const result = await emailChange.request({ account, newEmail: form.email, binding: bindingOf(ctx), ip: ctx.ip });
    if (!result.ok) {
      await kit.audit(ctx, 'user.email_change_requested', 'failure', { reason: result.reason });
      if (result.reason === 'throttled') {
        ctx.set('Retry-After', String(result.retryAfterSeconds));
        const message = `Too many codes were sent. Wait ${describeWait(result.retryAfterSeconds)}, then try again.`;
        // "Send a new code" too soon: the code step stays, with the wait said above it.
        const pending = await emailChange.pending(bindingOf(ctx));
        if (pending && pending.email === typed.trim().toLowerCase()) return render(ctx, { error: message, status: 429 });
        return render(ctx, { errors: { email: message }, status: 429, typed });
      }
      const message = result.reason === 'unchanged' ? 'That is already your email address. Enter the new one.' : result.message;
      return render(ctx, { errors: { email: message }, status: 400, typed });
    }
    await kit.audit(ctx, 'user.email_change_requested', 'success', { details: { newEmail: result.email } });
    kit.redirect(ctx, `${EMAIL_PATH}?done=sent`);
  });

  router.post('/email/verify', ...kit.sensitivePost('email'), async function verifyChange(ctx) {
    const { account, form, sessionUid } = ctx.state;
    const result = await emailChange.verify({ account, code: form.code, binding: bindingOf(ctx), ip: ctx.ip });
    if (!result.ok) {
      if (result.reason !== 'format') await kit.audit(ctx, 'user.email_changed', 'failure', { reason: result.reason === 'taken' ? 'email_taken' : `code_${result.reason}` });
      switch (result.reason) {
        case 'format':
          return render(ctx, { errors: { code: 'Enter the 6-digit code from the email.' }, status: 400 });
        case 'invalid':
          return render(ctx, { errors: { code: 'That code is not right. Check the email and try again.' }, status: 401 });
        case 'throttled':
          ctx.set('Retry-After', String(result.retryAfterSeconds));
          return render(ctx, { errors: { code: `Too many wrong codes. Wait ${describeWait(result.retryAfterSeconds)}, then try again.` }, status: 429 });
        case 'exhausted':
          return render(ctx, { errors: { code: 'Too many wrong codes for this one. Ask for a new code.' }, status: 400 });
        case 'expired':
          return render(ctx, { errors: { code: 'This code has expired. Ask for a new code.' }, status: 400 });
        case 'missing':
          return render(ctx, { errors: { email: 'No code is waiting for this page any more. Enter the new address to get a new code.' }, status: 400 });
        case 'taken':
          // The person proved they read this inbox: telling them reveals nothing new.
          return render(ctx, {
            errors: { email: 'That address already belongs to another account. Sign in to that account, or choose another address.' },
            status: 409,
          });
        case 'gone':
          return kit.redirect(ctx, `${kit.signIn.signInPath()}`);
      }
    }
    const endedSessions = await access.endOtherSessions(account.id, sessionUid);
    kit.log(ctx).info('email changed from the account centre', { accountId: account.id, endedSessions });
    await kit.audit(ctx, 'user.email_changed', 'success', {
      target: { type: 'account', id: account.id, label: result.account.email },
      details: { previousEmail: result.previousEmail, newEmail: result.account.email, endedSessions },
    });
    await notices.emailChanged({ id: account.id, email: result.account.email, name: account.name }, result.previousEmail);
    kit.redirect(ctx, `${EMAIL_PATH}?done=changed`);
  });

  router.post('/email/cancel', ...kit.post, async function cancelChange(ctx) {
    await emailChange.cancel(bindingOf(ctx));
    kit.redirect(ctx, `${EMAIL_PATH}?done=cancelled`);
  });
}
