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
  const { totp, pages, secretBox } = kit.deps;
  // The recovery codes wait, sealed, in the interaction between the POST that made them and the
  // page that shows them (post/redirect/get); bound to the interaction.
  const codesContext = (ctx: SignInContext) => `sign-in-recovery-codes:${ctx.state.interaction.uid}`;

  /**
   * Writes nothing (a GET): the secret travels sealed in the form (totp.service.ts); after a
   * wrong code the POST kept that sealed value in the interaction, so the person need not scan
   * again.
   */
  const renderEnrol = async (ctx: SignInContext) => {
    const { account, stepUp } = kit.requireAccount(ctx);
    const base = kit.page(ctx);
    const error = kit.pageError(ctx)?.message;
    const fresh = await totp.beginEnrolment({ id: account.id, email: account.email }, { continueFrom: ctx.state.kept.enrolment });
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
    await pages.render(ctx, 'interactions/totp-enrol', view);
  };

  /** The codes the activating POST kept (sealed) until the person continues; stored hashed otherwise. */
  const keptCodes = (ctx: SignInContext): string[] | undefined => {
    const sealed = ctx.state.kept.recoveryCodes;
    if (!sealed) return undefined;
    try {
      const codes: unknown = JSON.parse(secretBox.open(sealed, codesContext(ctx)));
      return Array.isArray(codes) && codes.every((c) => typeof c === 'string') ? codes : undefined;
    } catch {
      return undefined;
    }
  };

  const renderRecoveryCodes = async (ctx: SignInContext) => {
    const base = kit.page(ctx);
    const codes = keptCodes(ctx);
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
    show: (ctx) => (ctx.state.flow.step === 'recovery-codes' ? renderRecoveryCodes(ctx) : renderEnrol(ctx)),
    routes: [
      {
        path: '/second-factor/enrol',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          const { account } = kit.requireMethod(ctx, 'totp-enrolment');
          const enrolment = enrolmentField.safeParse(ctx.state.form.enrolment).data;
          const parsed = codeForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'enrol_code_required', { keep: { enrolment } });
          return kit.guarded(ctx, { kind: 'enrol', account, auditAction: 'mfa.enrolled' }, (code, wait) => flow.fail(ctx, code, { wait, keep: { enrolment } }), async (attempt) => {
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
                return flow.fail(ctx, 'enrol_expired');
              }
              return flow.fail(ctx, 'enrol_code_invalid', { keep: { enrolment } });
            }
            await attempt.succeeded();
            kit.log(ctx).info('authenticator app enrolled', { accountId: account.id, during: 'sign-in' });
            await kit.auditFactor(ctx, 'mfa.enrolled', account, 'success', { details: { during: 'sign-in' } });
            await kit.deps.notices.secondFactorAdded(account, 'totp');
            // Kept sealed in the interaction until the person continues: stored hashed otherwise.
            await flow.commit(ctx, { type: 'totp_enrolled' }, { recoveryCodes: secretBox.seal(JSON.stringify(result.recoveryCodes), codesContext(ctx)) });
            return flow.showCurrentStep(ctx);
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
