import { codeError, describeWait, tooManyAttempts, tooManyCodes } from './messages.js';

/**
 * What a sign-in page can say after a refused POST (post/redirect/get): the POST redirects to
 * the step's page with `?error=<code>` (and `&wait=<seconds>` when throttled); the GET shows
 * the message and answers with the status. Only these codes mean anything in the query, and the
 * texts are ours: nothing typed in the URL is ever shown.
 *
 * `field` puts the message next to one field (new password); `notice` shows it as a notice
 * rather than an error. `kept` codes need what the POST kept in the interaction (the password
 * policy's reason), and are ignored without it.
 */
interface PageErrorEntry {
  status: number;
  message: (p: { wait?: number | undefined }) => string;
  field?: 'password' | 'confirm';
  notice?: boolean;
}

const fixed = (text: string) => () => text;
const inWait = (wait: number | undefined) => (wait ? `in ${describeWait(wait)}` : 'in a moment');

export const PAGE_ERRORS = {
  // The first-factor page
  missing_credentials: { status: 400, message: fixed('Enter your email address and password.') },
  // One message for unknown email, wrong password and disabled account (no enumeration).
  wrong_password: { status: 401, message: fixed('Incorrect email or password.') },
  throttled: { status: 429, message: (p) => tooManyAttempts(false, p.wait ?? 60) },
  throttled_ip: { status: 429, message: (p) => tooManyAttempts(true, p.wait ?? 60) },
  email_required: { status: 400, message: fixed('Enter your email address to get a sign-in code.') },
  codes_throttled_ip: { status: 429, message: (p) => `Too many codes were asked for from your network. You can ask for a new one ${inWait(p.wait)}.` },
  codes_throttled_address: { status: 429, message: (p) => `Too many codes were sent to this address. You can ask for a new one ${inWait(p.wait)}.` },
  code_sent_recently: { status: 429, message: (p) => `A code was sent to this address moments ago. You can ask for a new one ${inWait(p.wait)}.` },
  // The codes of every page: by email, from the app, recovery codes
  email_code_required: { status: 400, message: fixed('Enter the 6-digit code from the email.') },
  code_invalid: { status: 401, message: fixed(codeError('invalid')) },
  code_expired: { status: 401, message: fixed(codeError('expired')) },
  code_exhausted: { status: 401, message: fixed(codeError('exhausted')) },
  code_missing: { status: 401, message: fixed(codeError('missing')) },
  code_throttled: { status: 429, message: (p) => tooManyCodes(p.wait ?? 60) },
  resend_throttled: { status: 429, notice: true, message: (p) => `A code was sent moments ago. You can ask for a new one ${inWait(p.wait)}.` },
  resend_throttled_ip: { status: 429, notice: true, message: (p) => `Too many codes were asked for from your network. You can ask for a new one ${inWait(p.wait)}.` },
  resend_throttled_address: { status: 429, notice: true, message: (p) => `Too many codes were sent to this address. You can ask for a new one ${inWait(p.wait)}.` },
  // Not a refusal: the code is queued and goes out as soon as the mail server answers.
  mail_delayed: { status: 200, notice: true, message: fixed('The email may take a little longer to arrive than usual. If it has not come in a few minutes, send a new code.') },
  app_code_required: { status: 400, message: fixed('Enter the 6-digit code from your authenticator app.') },
  app_code_invalid: { status: 401, message: fixed('That code is not right. Check your authenticator app and try again.') },
  app_code_replayed: { status: 401, message: fixed('That code was already used. Wait for the next code in your app.') },
  recovery_code_required: { status: 400, message: fixed('Enter one of your recovery codes.') },
  recovery_code_invalid: { status: 401, message: fixed('That recovery code is not valid, or it was already used.') },
  enrol_code_required: { status: 400, message: fixed('Enter the 6-digit code your app shows for this account.') },
  enrol_code_invalid: { status: 401, message: fixed('That code is not right. Check that the app added this account, then enter its current code.') },
  enrol_expired: { status: 400, message: fixed('This setup page has expired. Scan the new QR code (or enter the new key), then enter the code the app shows.') },
  // The password as a second step
  password_required: { status: 400, message: fixed('Enter your password.') },
  password_wrong: { status: 401, message: fixed('That password is not right.') },
  // The new password an administrator asked for
  new_password_required: { status: 400, field: 'password', message: fixed('Enter a new password, then the same password again.') },
  passwords_differ: { status: 400, field: 'confirm', message: fixed('The two passwords are not the same. Type the new password again.') },
  password_unchanged: { status: 400, field: 'password', message: fixed('Choose a password different from your current one.') },
  // Sign-up (the same answers for a free and a taken address: the service tells them apart only by mail)
  sign_up_incomplete: { status: 400, message: fixed('Fill in your email address, name and password.') },
  sign_up_email_invalid: { status: 400, message: fixed('Enter an email address, like name@example.com.') },
  sign_up_name_invalid: { status: 400, message: fixed('Enter your name without control characters (at most 200 characters).') },
  // The page says the policy's lengths (it knows them); this is the fallback.
  sign_up_password_invalid: { status: 400, field: 'password', message: fixed('Choose a longer or shorter password.') },
  invitation_only: { status: 403, message: fixed('Sign-up here is by invitation only. Open the link from your invitation.') },
  invitation_refused: { status: 403, message: fixed('This invitation is not valid for this address, or it has been used up or has expired.') },
  sign_up_throttled: { status: 429, message: (p) => `Too many sign-ups were started. Wait ${describeWait(p.wait ?? 60)}, then try again.` },
  // Its code page
  already_verified: { status: 409, message: fixed('This address was confirmed already. Go back and sign in instead.') },
  sign_up_expired: { status: 410, message: fixed('This sign-up has expired. Use a different address (or the same one) to start again.') },
  send_again: { status: 400, message: fixed('Send the form again.') },
  // Password reset (the same answers for a known and an unknown address)
  reset_email_invalid: { status: 400, message: fixed('Enter the email address of your account, like name@example.com.') },
  reset_throttled: { status: 429, message: (p) => `Too many reset codes were asked for. You can ask for a new one ${inWait(p.wait)}.` },
  reset_resend_throttled: { status: 429, notice: true, message: (p) => `Too many reset codes were asked for. You can ask for a new one ${inWait(p.wait)}.` },
  reset_expired: { status: 400, message: fixed('This password reset has expired. Go back to sign in and ask for a new code.') },
} as const satisfies Record<string, PageErrorEntry>;

export type PageErrorCode = keyof typeof PAGE_ERRORS | 'password_refused';

/** What the GET shows: resolved from the query (and, for `password_refused`, what the POST kept). */
export interface PageError {
  code: PageErrorCode;
  status: number;
  message: string;
  field?: 'password' | 'confirm' | undefined;
  notice: boolean;
  wait?: number | undefined;
}

const waitSchema = /^[1-9]\d{0,5}$/;

/**
 * The page error the query names, or undefined for none, an unknown code or a bad wait (then
 * the page shows as if nothing was asked). `refusal` is the password policy's message the POST
 * kept in the interaction, the only text not from this catalogue.
 */
export function pageErrorFrom(query: Record<string, unknown>, refusal?: string): PageError | undefined {
  const { error: code, wait: rawWait } = query;
  if (typeof code !== 'string') return undefined;
  const wait = typeof rawWait === 'string' && waitSchema.test(rawWait) ? Math.min(Number(rawWait), 86_400) : undefined;
  if (code === 'password_refused') {
    return refusal ? { code, status: 400, message: refusal, field: 'password', notice: false } : undefined;
  }
  if (!Object.hasOwn(PAGE_ERRORS, code)) return undefined;
  const entry: PageErrorEntry = PAGE_ERRORS[code as keyof typeof PAGE_ERRORS];
  return { code: code as PageErrorCode, status: entry.status, message: entry.message({ wait }), field: entry.field, notice: entry.notice ?? false, wait: entry.status === 429 ? wait : undefined };
}
