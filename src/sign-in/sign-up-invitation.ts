import type { InvitationService } from '../invitations/invitation.service.js';
import type { SecretBox } from '../crypto/secret-box.js';

/**
 * The invitation a sign-up carries: the token from the invitation link, sealed (AES-256-GCM,
 * ENCRYPTION_KEYS) into the authorization request's `invitation` parameter, so it never appears
 * in a URL, a log or the interaction record in the clear. Only this server can seal one, so a
 * value that opens came from the invitation entry page.
 */
const CONTEXT = 'sign-up-invitation';
const MAX_SEALED = 512;

export function sealInvitation(box: SecretBox, token: string): string {
  return box.seal(token, CONTEXT);
}

/** The token, or undefined when the parameter is missing or does not open. */
export function openInvitation(box: SecretBox, sealed: unknown): string | undefined {
  if (typeof sealed !== 'string' || sealed.length === 0 || sealed.length > MAX_SEALED) return undefined;
  try {
    return box.open(sealed, CONTEXT);
  } catch {
    return undefined;
  }
}

export type SignUpAccess =
  | { allowed: true; invitation?: string | undefined; boundEmail?: string | undefined }
  | { allowed: false; reason: 'closed' | 'invitation_required' };

/**
 * Whether this authorization request may sign up, and with which invitation. Reads only
 * (`invitations.check` has no side effects): the use is spent by the sign-up itself.
 */
export async function signUpAccess(
  deps: { config: { signUp: { mode: 'open' | 'invite' | 'closed' } }; secretBox: SecretBox; invitations: Pick<InvitationService, 'check'> },
  params: Record<string, unknown>,
): Promise<SignUpAccess> {
  const { mode } = deps.config.signUp;
  if (mode === 'closed') return { allowed: false, reason: 'closed' };
  const invitation = openInvitation(deps.secretBox, params.invitation);
  const check = invitation ? await deps.invitations.check(invitation) : undefined;
  const valid = check?.valid ? check : undefined;
  if (mode === 'invite' && !valid) return { allowed: false, reason: 'invitation_required' };
  return { allowed: true, invitation: valid ? invitation : undefined, boundEmail: valid?.boundEmail };
}
