/**
 * Every action the audit log records, in one place: `record()` takes only these, so a new
 * action is added here (and shows up in the console's and API's filters as it is used).
 *
 * NOTE: stored events keep their action as a string, and older events may carry actions no
 * longer listed: reading (`AuditEvent.action`, filters) stays `string`.
 */
export const AUDIT_ACTIONS = [
  // Sign-in (the interaction pages) and its second factors
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
  'user.password_changed',
  'consent.granted',
  'consent.denied',
  // The provider's events (src/oidc/events.ts)
  'token.issued',
  'token.revoked',
  'session.ended',
  // Back-channel logout deliveries (src/oidc/backchannel-logout.service.ts)
  'logout.backchannel_delivered',
  'logout.backchannel_failed',
  'client.registered',
  'client.registration_updated',
  'client.registration_deleted',
  // Administrators: clients, users, tokens
  'client.created',
  'client.updated',
  'client.secret_rotated',
  'client.deleted',
  'api_resource.created',
  'api_resource.updated',
  'api_resource.deleted',
  'user.created',
  'user.updated',
  'user.role_granted',
  'user.role_revoked',
  'user.disabled',
  'user.enabled',
  'user.mfa_reset',
  'user.password_reset_required',
  'user.deleted',
  'registration_token.created',
  'registration_token.revoked',
  'registration_token.used',
  'api_token.issued',
  'signing_key.rotated',
  'signing_key.retired',
  // The account centre (the person as actor) and the console's user page (an admin as actor)
  'session.revoked',
  'grant.revoked',
  'user.profile_updated',
  'user.email_change_requested',
  'user.email_changed',
  'user.email_change_reported',
  'user.password_set',
  'user.data_exported',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export function isAuditAction(value: string): value is AuditAction {
  return (AUDIT_ACTIONS as readonly string[]).includes(value);
}
