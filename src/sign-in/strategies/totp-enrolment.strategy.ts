import { z } from 'zod';

import { codeForm } from '../forms.js';
import { recoveryCodesText } from '../messages.js';
import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';

/** The sealed secret from the enrolment form; totp.activate opens and checks it. */
const enrolmentField = z.string().max(2048);

/**
 * Forced enrolment of an authenticator app: the policy needs a second factor and the account has
 * none it may use. Then its recovery codes, shown once (step `recovery-codes`).
 */
export function createTotpEnrolmentStrategy(kit: SignInKit): SignInStrategy {
  const { totp, pages } = kit.deps;

  /**
   * Writes nothing (the page is also shown on a GET): the secret travels sealed in the form
   * (totp.service.ts); `enrolment` is that sealed value when re-rendering after a wrong code, so
   * the person need not scan again.
   */
  const renderEnrol = async (ctx: SignInContext, error?: string, status = 200, enrolment?: string) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    const base = kit.page(ctx);
    const fresh = await totp.beginEnrolment({ id: account.id, email: account.email }, { continueFrom: enrolment });
    const view = {
      ...base,
      title: 'Set up two-step verification',
      stepUp,
      required: true,
      qrCodeDataUrl: fresh.qrCodeDataUrl,
      secretGroups: fresh.secret.match(/.{1,4}/g) ?? [fresh.secret],
      enrolment: fresh.sealed,
      action: `/interaction/${base.uid}/second-factor/enrol`,
      error,
    };
    await pages.render(ctx, 'interactions/totp-enrol', view, status);
  };

  /** `codes` only in the response that activated the app: they are stored hashed. */
  const renderRecoveryCodes = async (ctx: SignInContext, codes: string[] | undefined) => {
    const base = kit.page(ctx);
    await pages.render(ctx, 'interactions/recovery-codes', {
      ...base,
      title: 'Save your recovery codes',
      codes,
      download: codes ? `data:text/plain;charset=utf-8,${encodeURIComponent(recoveryCodesText(kit.config.productName, codes))}` : undefined,
      action: `/interaction/${base.uid}/second-factor/continue`,
    });
  };

  return {
    id: 'totp-enrolment',
    show: (ctx) => (ctx.state.flow.step === 'recovery-codes' ? renderRecoveryCodes(ctx, undefined) : renderEnrol(ctx)),
    routes: [
      {
        path: '/second-factor/enrol',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'totp-enrolment');
          const enrolment = enrolmentField.safeParse(ctx.state.form.enrolment).data;
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return renderEnrol(ctx, 'Enter the 6-digit code your app shows for this account.', 400, enrolment);
          return kit.guarded(ctx, { kind: 'enrol', account, auditAction: 'mfa.enrolled' }, (message) => renderEnrol(ctx, message, 429, enrolment), async (attempt) => {
            const result = await totp.activate(account.id, parsed.data.code, enrolment ?? '');
            if (!result.ok && result.reason === 'already_enrolled') {
              // Finished in another tab a moment ago: the page for the current step now asks for a code.
              // Counted as a failure (conservative): only a verified code may reset the count.
              await attempt.failed();
              return flow.showCurrentStep(ctx);
            }
            if (!result.ok) {
              await attempt.failed();
              await kit.auditFactor(ctx, 'mfa.enrolled', account, 'failure', { reason: `code_${result.reason}`, details: { during: 'sign-in' } });
              if (result.reason === 'expired') {
                // A new secret: the old page can no longer be activated.
                return renderEnrol(ctx, 'This setup page has expired. Scan the new QR code (or enter the new key), then enter the code the app shows.', 400);
              }
              return renderEnrol(ctx, 'That code is not right. Check that the app added this account, then enter its current code.', 401, enrolment);
            }
            await attempt.succeeded();
            kit.log(ctx).info('authenticator app enrolled', { accountId: account.id, during: 'sign-in' });
            await kit.auditFactor(ctx, 'mfa.enrolled', account, 'success', { details: { during: 'sign-in' } });
            await flow.commit(ctx, { type: 'totp_enrolled' });
            // Shown in this response only: the codes are stored hashed and cannot be shown again.
            return renderRecoveryCodes(ctx, result.recoveryCodes);
          });
        },
      },
      {
        path: '/second-factor/continue',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          kit.requireStep(ctx, 'recovery-codes');
          kit.requireAccount(ctx);
          return flow.advance(ctx, { type: 'recovery_codes_saved' });
        },
      },
    ],
  };
}
