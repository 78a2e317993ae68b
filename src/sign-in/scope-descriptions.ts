/** What a person is told on the consent page for each scope and claim. */
export const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are when you sign in',
  email: 'See your email address',
  profile: 'See your name and basic profile',
  offline_access: 'Stay connected to your account when you are not using the app',
  // The management API's scopes (admins only; the API refuses them to everyone else).
  'admin:clients:read': 'See the registered applications (administrators)',
  'admin:clients:write': 'Register, change and delete applications (administrators)',
  'admin:users:read': 'See user accounts (administrators)',
  'admin:users:write': 'Change, disable and delete user accounts (administrators)',
  'admin:audit:read': 'Read the audit log (administrators)',
};

export const CLAIM_DESCRIPTIONS: Record<string, string> = {
  sub: 'Your account identifier',
  email: 'Email address',
  email_verified: 'Whether your email address is verified',
  name: 'Full name',
  updated_at: 'When your profile was last updated',
};

export function describeScope(scope: string): { name: string; description: string } {
  return { name: scope, description: SCOPE_DESCRIPTIONS[scope] ?? `Access "${scope}"` };
}

export function describeClaim(claim: string): { name: string; description: string } {
  return { name: claim, description: CLAIM_DESCRIPTIONS[claim] ?? claim };
}
