/**
 * The sign-in flow as a table: state × event × context → next state, or finish with `login`, or
 * refused. No HTTP, no database: `transition` is pure.
 */
import { describe, expect, it } from '@jest/globals';

import { defaults } from '../../config/defaults.js';
import type { Factor, MfaSettings } from '../../src/oidc/policy.js';
import type { FlowAccount, FlowContext, SignInEvent, SignInState, Transition } from '../../src/sign-in/flow.js';
import { effectiveState, pageFor, secondFactorMethod, transition } from '../../src/sign-in/flow.js';

const settings: MfaSettings = { mfa: { requiredForAdmins: true, emailFallback: true }, acr: { ...defaults.acr } };
const { singleFactor, emailSecondFactor, multiFactor } = defaults.acr;
const NOW = 1_800_000_000_000;

const account = (id: string, overrides: Partial<FlowAccount> = {}): FlowAccount => ({ id, totpEnabled: false, hasPassword: true, roles: [], passwordResetRequired: false, ...overrides });
const plain = account('plain');
const withApp = account('app', { totpEnabled: true });
const admin = account('admin', { roles: ['admin'] });
const mustReset = account('reset', { passwordResetRequired: true });
const passwordless = account('nopwd', { hasPassword: false });

const context = (overrides: Partial<FlowContext> = {}): FlowContext => ({ prompt: 'login', account: undefined, clientRequiresMfa: false, acrValues: [], settings, now: NOW, ...overrides });
const login = (accountId: string, amr: string[], acr: string) => ({ finish: { accountId, amr, acr, ts: NOW / 1000, remember: true } });

const identify: SignInState = { step: 'identify' };
const codeSent: SignInState = { step: 'email-code', email: 'a@example.com' };
const second = (a: FlowAccount, factors: Factor[]): SignInState => ({ step: 'second-factor', accountId: a.id, factors });
const recoveryUsed = (a: FlowAccount, factors: Factor[], left: number): SignInState => ({ step: 'recovery-used', accountId: a.id, factors, left });
const WRONG: Transition = { refused: 'wrong_step' };
const resetRequest: SignInState = { step: 'reset-request', email: 'a@example.com' };
const resetCode: SignInState = { step: 'reset-code', email: 'a@example.com', flowId: 'flow1' };
const resetPassword: SignInState = { step: 'reset-password', email: 'a@example.com', grant: 'g' };
const fresh = account('fresh');
const signUpStep: SignInState = { step: 'sign-up' };
const verifyStep: SignInState = { step: 'verify-email', flowId: 'f1', email: 'new@example.com', name: 'Ann' };

type Row = [name: string, state: SignInState, event: SignInEvent, context: FlowContext, expected: Transition];

const rows: Row[] = [
  // First factor.
  ['password, nothing else required → finish, single factor', identify, { type: 'identified', account: plain, factor: 'pwd' }, context(), login('plain', ['pwd'], singleFactor)],
  ['email code, nothing else required → finish', codeSent, { type: 'identified', account: plain, factor: 'email' }, context(), login('plain', ['email'], singleFactor)],
  ['password after asking for a code (changed their mind) → finish', codeSent, { type: 'identified', account: plain, factor: 'pwd' }, context(), login('plain', ['pwd'], singleFactor)],
  ['password, account has an app → second factor', identify, { type: 'identified', account: withApp, factor: 'pwd' }, context(), { state: second(withApp, ['pwd']), reasons: ['totp_enrolled'] }],
  ['password, require_mfa client → second factor', identify, { type: 'identified', account: plain, factor: 'pwd' }, context({ clientRequiresMfa: true }), { state: second(plain, ['pwd']), reasons: ['client_requires_mfa'] }],
  ['password, acr_values multi-factor → second factor', identify, { type: 'identified', account: plain, factor: 'pwd' }, context({ acrValues: [multiFactor] }), { state: second(plain, ['pwd']), reasons: ['acr_requested'] }],
  ['password, administrator → second factor', identify, { type: 'identified', account: admin, factor: 'pwd' }, context(), { state: second(admin, ['pwd']), reasons: ['admin_role'] }],
  ['password, all factors done but a new password is required → new-password', identify, { type: 'identified', account: mustReset, factor: 'pwd' }, context(), { state: { step: 'new-password', accountId: 'reset', factors: ['pwd'] } }],
  ['identified again once a first factor is done → refused', second(withApp, ['pwd']), { type: 'identified', account: withApp, factor: 'pwd' }, context({ account: withApp }), WRONG],
  ['identified at a step-up → refused', identify, { type: 'identified', account: plain, factor: 'pwd' }, context({ prompt: 'mfa' }), WRONG],

  // Second factor.
  ['TOTP after password → finish, multi-factor', second(withApp, ['pwd']), { type: 'verified', factor: 'totp' }, context({ account: withApp }), login('app', ['pwd', 'otp', 'mfa'], multiFactor)],
  ['recovery code after password → finish, multi-factor', second(withApp, ['pwd']), { type: 'verified', factor: 'recovery' }, context({ account: withApp }), login('app', ['pwd', 'otp', 'mfa'], multiFactor)],
  ['email code after password, require_mfa → finish, email second factor', second(plain, ['pwd']), { type: 'verified', factor: 'email' }, context({ account: plain, clientRequiresMfa: true }), login('plain', ['pwd', 'email', 'mfa'], emailSecondFactor)],
  ['password after email code, require_mfa → finish', second(plain, ['email']), { type: 'verified', factor: 'pwd' }, context({ account: plain, clientRequiresMfa: true }), login('plain', ['email', 'pwd', 'mfa'], emailSecondFactor)],
  ['email code when level 3 is needed → still second factor', second(admin, ['pwd']), { type: 'verified', factor: 'email' }, context({ account: admin }), { state: second(admin, ['pwd', 'email']), reasons: ['admin_role'] }],
  ['the same factor twice is not two factors', second(withApp, ['pwd']), { type: 'verified', factor: 'pwd' }, context({ account: withApp }), { state: second(withApp, ['pwd']), reasons: ['totp_enrolled'] }],
  ['second factor done, new password required → new-password', second(mustReset, ['pwd']), { type: 'verified', factor: 'email' }, context({ account: mustReset, clientRequiresMfa: true }), { state: { step: 'new-password', accountId: 'reset', factors: ['pwd', 'email'] } }],
  ['verified without a first factor → refused', identify, { type: 'verified', factor: 'totp' }, context({ account: withApp }), WRONG],
  ['verified while a code is pending → refused', codeSent, { type: 'verified', factor: 'email' }, context({ account: plain }), WRONG],
  ['verified for another account than the state names → refused', second(withApp, ['pwd']), { type: 'verified', factor: 'totp' }, context({ account: admin }), WRONG],
  ['verified without the account loaded → refused', second(withApp, ['pwd']), { type: 'verified', factor: 'totp' }, context(), WRONG],

  // Sign-up and email verification.
  ['sign-up form accepted (from the login page) → verify-email', identify, { type: 'sign_up_started', flowId: 'f1', email: 'new@example.com', name: 'Ann' }, context(), { state: { step: 'verify-email', flowId: 'f1', email: 'new@example.com', name: 'Ann' } }],
  ['sign-up form accepted (sign-up step) → verify-email', signUpStep, { type: 'sign_up_started', flowId: 'f1', email: 'new@example.com' }, context(), { state: { step: 'verify-email', flowId: 'f1', email: 'new@example.com', name: undefined } }],
  ['a new sign-up from the code page (another tab) → verify-email with the new flow', verifyStep, { type: 'sign_up_started', flowId: 'f2', email: 'b@example.com' }, context(), { state: { step: 'verify-email', flowId: 'f2', email: 'b@example.com', name: undefined } }],
  ['sign-up once an account is identified → refused', second(withApp, ['pwd']), { type: 'sign_up_started', flowId: 'f1', email: 'a@example.com' }, context({ account: withApp }), WRONG],
  ['sign-up at a step-up → refused', identify, { type: 'sign_up_started', flowId: 'f1', email: 'a@example.com' }, context({ prompt: 'mfa' }), WRONG],
  ['use a different address → sign-up, the name kept', verifyStep, { type: 'change_address' }, context(), { state: { step: 'sign-up', name: 'Ann' } }],
  ['use a different address outside the code page → refused', signUpStep, { type: 'change_address' }, context(), WRONG],
  ['inbox proven, nothing else required → finish, password and email (level 2)', verifyStep, { type: 'email_verified', account: fresh }, context(), login('fresh', ['pwd', 'email', 'mfa'], emailSecondFactor)],
  ['inbox proven, require_mfa client → finish (pwd + email is level 2)', verifyStep, { type: 'email_verified', account: fresh }, context({ clientRequiresMfa: true }), login('fresh', ['pwd', 'email', 'mfa'], emailSecondFactor)],
  ['inbox proven, acr_values multi-factor → second factor (an app)', verifyStep, { type: 'email_verified', account: fresh }, context({ acrValues: [multiFactor] }), { state: second(fresh, ['pwd', 'email']), reasons: ['acr_requested'] }],
  ['inbox proven without a code page → refused', identify, { type: 'email_verified', account: fresh }, context(), WRONG],
  ['inbox proven from the sign-up form → refused', signUpStep, { type: 'email_verified', account: fresh }, context(), WRONG],
  ['restart from the code page → identify', verifyStep, { type: 'restart' }, context(), { state: identify }],

  // Enrolment and recovery codes.
  ['app enrolled → recovery-codes, with the app counted', second(admin, ['pwd']), { type: 'totp_enrolled' }, context({ account: admin }), { state: { step: 'recovery-codes', accountId: 'admin', factors: ['pwd', 'totp'] } }],
  ['recovery codes saved → finish, multi-factor', { step: 'recovery-codes', accountId: 'admin', factors: ['pwd', 'totp'] }, { type: 'recovery_codes_saved' }, context({ account: { ...admin, totpEnabled: true } }), login('admin', ['pwd', 'otp', 'mfa'], multiFactor)],
  ['recovery codes saved before enrolment → refused', second(admin, ['pwd']), { type: 'recovery_codes_saved' }, context({ account: admin }), WRONG],
  ['app enrolled before any factor → refused', identify, { type: 'totp_enrolled' }, context({ account: admin }), WRONG],

  // A recovery code: the page saying how many are left comes before the finish.
  ['recovery code used after password → recovery-used, the code counted, how many left', second(withApp, ['pwd']), { type: 'recovery_code_used', left: 7 }, context({ account: withApp }), { state: recoveryUsed(withApp, ['pwd', 'recovery'], 7) }],
  ['the last recovery code used → recovery-used with none left', second(withApp, ['pwd']), { type: 'recovery_code_used', left: 0 }, context({ account: withApp }), { state: recoveryUsed(withApp, ['pwd', 'recovery'], 0) }],
  ['a negative count is read as none left', second(withApp, ['pwd']), { type: 'recovery_code_used', left: -3 }, context({ account: withApp }), { state: recoveryUsed(withApp, ['pwd', 'recovery'], 0) }],
  ['Continue on the codes-left page → finish, multi-factor', recoveryUsed(withApp, ['pwd', 'recovery'], 7), { type: 'recovery_notice_seen' }, context({ account: withApp }), login('app', ['pwd', 'otp', 'mfa'], multiFactor)],
  ['Continue, new password required → new-password', recoveryUsed({ ...mustReset, totpEnabled: true }, ['pwd', 'recovery'], 2), { type: 'recovery_notice_seen' }, context({ account: { ...mustReset, totpEnabled: true } }), { state: { step: 'new-password', accountId: 'reset', factors: ['pwd', 'recovery'] } }],
  ['Continue at a step-up → finish with the session factors and the code', recoveryUsed(withApp, ['pwd', 'recovery'], 3), { type: 'recovery_notice_seen' }, context({ prompt: 'mfa', account: withApp }), login('app', ['pwd', 'otp', 'mfa'], multiFactor)],
  ['Continue before any code was used → refused', second(withApp, ['pwd']), { type: 'recovery_notice_seen' }, context({ account: withApp }), WRONG],
  ['a second code on the codes-left page → refused', recoveryUsed(withApp, ['pwd', 'recovery'], 7), { type: 'recovery_code_used', left: 6 }, context({ account: withApp }), WRONG],
  ['a recovery code before any factor → refused', identify, { type: 'recovery_code_used', left: 7 }, context({ account: withApp }), WRONG],
  ['Continue for another account than the state names → refused', recoveryUsed(withApp, ['pwd', 'recovery'], 7), { type: 'recovery_notice_seen' }, context({ account: admin }), WRONG],
  ['Continue without the account loaded → refused', recoveryUsed(withApp, ['pwd', 'recovery'], 7), { type: 'recovery_notice_seen' }, context(), WRONG],
  ['restart from the codes-left page → identify', recoveryUsed(withApp, ['pwd', 'recovery'], 7), { type: 'restart' }, context({ account: withApp }), { state: identify }],

  // New password.
  ['new password set → finish', { step: 'new-password', accountId: 'reset', factors: ['pwd'] }, { type: 'password_changed' }, context({ account: mustReset }), login('reset', ['pwd'], singleFactor)],
  ['new password set, the policy still wants more → second factor', { step: 'new-password', accountId: 'reset', factors: ['pwd'] }, { type: 'password_changed' }, context({ account: { ...mustReset, totpEnabled: true } }), { state: { step: 'second-factor', accountId: 'reset', factors: ['pwd'] }, reasons: ['totp_enrolled'] }],
  ['password_changed outside the new-password step → refused', second(mustReset, ['pwd']), { type: 'password_changed' }, context({ account: mustReset }), WRONG],

  // Codes by email and restart.
  ['code sent → email-code', identify, { type: 'code_sent', email: 'b@example.com' }, context(), { state: { step: 'email-code', email: 'b@example.com' } }],
  ['code sent again → email-code, the new address', codeSent, { type: 'code_sent', email: 'c@example.com' }, context(), { state: { step: 'email-code', email: 'c@example.com' } }],
  ['code sent after a first factor starts over with that address', second(withApp, ['pwd']), { type: 'code_sent', email: 'd@example.com' }, context({ account: withApp }), { state: { step: 'email-code', email: 'd@example.com' } }],
  ['a sign-in code at a step-up → refused', identify, { type: 'code_sent', email: 'b@example.com' }, context({ prompt: 'mfa' }), WRONG],
  ['restart → identify', second(withApp, ['pwd']), { type: 'restart' }, context({ account: withApp }), { state: identify }],
  ['restart at a step-up → refused', second(withApp, ['pwd']), { type: 'restart' }, context({ prompt: 'mfa', account: withApp }), WRONG],

  // Password reset ("Forgot password?"): the reset proves the mailbox, one factor (`email`), never two.
  ['reset started on the first-factor page → reset-request, what was typed kept', identify, { type: 'reset_started', email: 'a@example.com' }, context(), { state: resetRequest }],
  ['reset started while a sign-in code is pending → reset-request', codeSent, { type: 'reset_started', email: 'a@example.com' }, context(), { state: resetRequest }],
  ['reset started after a first factor → refused', second(withApp, ['pwd']), { type: 'reset_started', email: 'a@example.com' }, context({ account: withApp }), WRONG],
  ['reset started at a step-up → refused', identify, { type: 'reset_started', email: 'a@example.com' }, context({ prompt: 'mfa' }), WRONG],
  ['reset code sent → reset-code', resetRequest, { type: 'reset_code_sent', email: 'a@example.com', flowId: 'flow1' }, context(), { state: resetCode }],
  ['reset code sent again (resend) → reset-code, the new flow', resetCode, { type: 'reset_code_sent', email: 'a@example.com', flowId: 'flow2' }, context(), { state: { ...resetCode, flowId: 'flow2' } }],
  ['reset code sent from the first-factor page (skipping the request step) → refused', identify, { type: 'reset_code_sent', email: 'a@example.com', flowId: 'flow1' }, context(), WRONG],
  ['reset code right → reset-password, with the grant', resetCode, { type: 'reset_verified', grant: 'g' }, context(), { state: resetPassword }],
  ['reset verified before a code was sent → refused', resetRequest, { type: 'reset_verified', grant: 'g' }, context(), WRONG],
  ['password reset, nothing else required → finish, single factor (email)', resetPassword, { type: 'password_reset', account: plain }, context(), login('plain', ['email'], singleFactor)],
  ['password reset, account has an app → second factor (the app), the reset counted as email only', resetPassword, { type: 'password_reset', account: withApp }, context(), { state: second(withApp, ['email']), reasons: ['totp_enrolled'] }],
  ['password reset, require_mfa client → second factor: a reset is never two factors', resetPassword, { type: 'password_reset', account: plain }, context({ clientRequiresMfa: true }), { state: second(plain, ['email']), reasons: ['client_requires_mfa'] }],
  ['password reset, administrator → second factor', resetPassword, { type: 'password_reset', account: admin }, context(), { state: second(admin, ['email']), reasons: ['admin_role'] }],
  ['password reset before the code was checked → refused', resetCode, { type: 'password_reset', account: plain }, context(), WRONG],
  ['password reset from the first-factor page → refused', identify, { type: 'password_reset', account: plain }, context(), WRONG],
  ['restart from a reset step → identify', resetPassword, { type: 'restart' }, context(), { state: identify }],
];

describe('transition', () => {
  it.each(rows)('%s', (_name, state, event, ctx, expected) => {
    expect(transition(state, event, ctx)).toEqual(expected);
  });

  it('never finishes below the level the policy asks for', () => {
    const accounts = [plain, withApp, admin, passwordless];
    const factorSets = [['pwd'], ['email'], ['pwd', 'email'], ['pwd', 'totp'], ['email', 'recovery']] as const;
    for (const a of accounts) {
      for (const clientRequiresMfa of [false, true]) {
        for (const acrValues of [[], [emailSecondFactor], [multiFactor]]) {
          for (const factors of factorSets) {
            const next = transition(second(a, [factors[0]]), { type: 'verified', factor: factors[1] ?? factors[0] }, context({ account: a, clientRequiresMfa, acrValues }));
            if (!('finish' in next)) continue;
            const strong = next.finish.acr === multiFactor;
            if (a.totpEnabled || a.roles.includes('admin') || acrValues.includes(multiFactor as never)) expect(strong).toBe(true);
            if (clientRequiresMfa) expect(next.finish.amr).toContain('mfa');
          }
        }
      }
    }
  });
});

describe('the state a request works on', () => {
  it('at login: the stored state', () => {
    expect(effectiveState('login', codeSent, { accountId: 'x', factors: ['pwd'] })).toEqual(codeSent);
  });
  it.each([
    ['nothing stored: the session account and its factors', identify, { step: 'second-factor', accountId: 's', factors: ['pwd'] }],
    ['factors of this interaction are added', second(account('s'), ['email']), { step: 'second-factor', accountId: 's', factors: ['pwd', 'email'] }],
    ['the new-password step is kept', { step: 'new-password', accountId: 's', factors: ['pwd', 'totp'] }, { step: 'new-password', accountId: 's', factors: ['pwd', 'totp'] }],
    ['the recovery-codes step is kept', { step: 'recovery-codes', accountId: 's', factors: ['pwd', 'totp'] }, { step: 'recovery-codes', accountId: 's', factors: ['pwd', 'totp'] }],
    ['the recovery-used step is kept, with its count', { step: 'recovery-used', accountId: 's', factors: ['recovery'], left: 4 }, { step: 'recovery-used', accountId: 's', factors: ['pwd', 'recovery'], left: 4 }],
  ] as [string, SignInState, SignInState][])('at a step-up, %s', (_name, stored, expected) => {
    expect(effectiveState('mfa', stored, { accountId: 's', factors: ['pwd'] })).toEqual(expected);
  });
  it('a step-up without a session account names no account', () => {
    expect(effectiveState('mfa', identify, { accountId: undefined, factors: [] })).toEqual({ step: 'second-factor', accountId: '', factors: [] });
  });
});

describe('which strategy shows the current step', () => {
  it.each([
    ['identify', identify, context(), undefined, 'password'],
    ['identify, ?method=sign-up (the Create account link)', identify, context(), 'sign-up', 'sign-up'],
    ['sign-up', { step: 'sign-up' }, context(), undefined, 'sign-up'],
    ['a sign-up code is pending', { step: 'verify-email', flowId: 'f1', email: 'a@example.com' }, context(), undefined, 'verify-email'],
    ['inbox proven, level 3 asked for', { step: 'second-factor', accountId: 'fresh', factors: ['pwd', 'email'] }, context({ account: fresh, acrValues: [multiFactor] }), undefined, 'totp-enrolment'],
    ['a code is pending', codeSent, context(), undefined, 'email-code'],
    ['an app', second(withApp, ['pwd']), context({ account: withApp }), undefined, 'totp'],
    ['an app, ?method=recovery', second(withApp, ['pwd']), context({ account: withApp }), 'recovery', 'recovery-code'],
    ['no app, require_mfa, after a password', second(plain, ['pwd']), context({ account: plain, clientRequiresMfa: true }), undefined, 'email-code'],
    ['no app, require_mfa, after an email code', second(plain, ['email']), context({ account: plain, clientRequiresMfa: true }), undefined, 'password'],
    ['no app, passwordless, after an email code', second(passwordless, ['email']), context({ account: passwordless, clientRequiresMfa: true }), undefined, 'totp-enrolment'],
    ['no app, administrator (level 3)', second(admin, ['pwd']), context({ account: admin }), undefined, 'totp-enrolment'],
    ['no app, ?method=recovery means nothing', second(plain, ['pwd']), context({ account: plain, clientRequiresMfa: true }), 'recovery', 'email-code'],
    ['a recovery code used: how many are left', { step: 'recovery-used', accountId: 'app', factors: ['pwd', 'recovery'], left: 3 }, context({ account: withApp }), undefined, 'recovery-code'],
    ['recovery codes shown', { step: 'recovery-codes', accountId: 'admin', factors: ['pwd', 'totp'] }, context({ account: admin }), undefined, 'totp-enrolment'],
    ['new password', { step: 'new-password', accountId: 'reset', factors: ['pwd'] }, context({ account: mustReset }), undefined, 'new-password'],
    ['reset request', resetRequest, context(), undefined, 'reset-request'],
    ['reset code', resetCode, context(), undefined, 'reset-code'],
    ['reset password', resetPassword, context(), undefined, 'reset-password'],
  ] as [string, SignInState, FlowContext, unknown, string][])('%s → %s', (_name, state, ctx, requested, page) => {
    expect(pageFor(state, ctx, requested)).toBe(page);
  });

  it('no email code as a second factor with MFA_EMAIL_FALLBACK=false', () => {
    const noFallback = { ...settings, mfa: { ...settings.mfa, emailFallback: false } };
    expect(secondFactorMethod(plain, ['pwd'], context({ clientRequiresMfa: true, settings: noFallback }))).toBe('totp-enrolment');
  });
});
