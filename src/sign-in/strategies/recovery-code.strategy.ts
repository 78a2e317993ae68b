import { z } from 'zod';

import type { SignInKit } from '../sign-in-kit.js';
import type { SignInContext } from '../sign-in-context.js';
import type { SignInStrategy } from '../strategy.js';
import { renderTotpPage } from './totp.strategy.js';

const recoveryForm = z.object({
  csrf: z.string(),
  code: z
    .string()
    .max(64)
    .transform((s) => s.trim())
    .pipe(z.string().regex(/^[A-Za-z0-9 -]{8,40}$/)),
});

/** Where a person sets up the authenticator app again (the account centre; a stable path). */
const SECURITY_PAGE = '/account/security';

/**
 * One of the authenticator app's recovery codes, each usable once (`?method=recovery`). A code
 * that works is spent at once and mailed about (`recoveryCodeUsed`); then, before the sign-in
 * finishes, the `recovery-used` step says how many codes are left and offers to set up the app
 * again (someone using a recovery code has usually lost the phone).
 */
export function createRecoveryCodeStrategy(kit: SignInKit): SignInStrategy {
  const { totp, notices, pages } = kit.deps;

  /** Writes nothing (a GET): the count was stored in the flow state by the POST that spent the code. */
  const renderCodesLeft = async (ctx: SignInContext) => {
    const state = kit.requireStep(ctx, 'recovery-used');
    const { account } = kit.requireAccount(ctx);
    const base = kit.page(ctx);
    await pages.render(ctx, 'interactions/recovery-code-used', {
      ...base,
      title: 'You used a recovery code',
      email: account.email,
      left: state.left,
      action: `/interaction/${base.uid}/second-factor/recovery/continue`,
      securityUrl: SECURITY_PAGE,
    });
  };

  return {
    id: 'recovery-code',
    show: (ctx) => (ctx.state.flow.step === 'recovery-used' ? renderCodesLeft(ctx) : renderTotpPage(kit, ctx, 'recovery')),
    routes: [
      {
        path: '/second-factor/recovery',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          // Only where a code can count: a code posted from a stale page on another step would
          // be spent and then refused by the transition.
          kit.requireStep(ctx, 'second-factor');
          const { account } = kit.requireMethod(ctx, 'recovery-code');
          const parsed = recoveryForm.safeParse(ctx.state.form);
          if (!parsed.success) return flow.fail(ctx, 'recovery_code_required', { method: 'recovery' });
          return kit.guarded(ctx, { kind: 'recovery', account, auditAction: 'mfa.recovery_code' }, (code, wait) => flow.fail(ctx, code, { wait, method: 'recovery' }), async (attempt) => {
            const result = await totp.verifyRecoveryCode(account.id, parsed.data.code);
            if (!result.ok) {
              await attempt.failed();
              kit.log(ctx).info('second factor failed', { accountId: account.id, method: 'recovery', reason: result.reason });
              await kit.auditFactor(ctx, 'mfa.recovery_code', account, 'failure', { reason: `code_${result.reason}` });
              return flow.fail(ctx, 'recovery_code_invalid', { method: 'recovery' });
            }
            await attempt.succeeded();
            kit.log(ctx).info('second factor succeeded', { accountId: account.id, method: 'recovery', recoveryCodesLeft: result.remaining });
            await kit.auditFactor(ctx, 'mfa.recovery_code', account, 'success', { details: { recoveryCodesLeft: result.remaining } });
            // Now, not at "Continue": the code is spent whether or not the person goes on.
            await notices.recoveryCodeUsed(account, result.remaining);
            return flow.advance(ctx, { type: 'recovery_code_used', left: result.remaining });
          });
        },
      },
      {
        path: '/second-factor/recovery/continue',
        prompts: ['login', 'mfa'],
        loadsAccount: true,
        async handle(ctx, flow) {
          kit.requireStep(ctx, 'recovery-used');
          kit.requireAccount(ctx);
          return flow.advance(ctx, { type: 'recovery_notice_seen' });
        },
      },
    ],
  };
}
