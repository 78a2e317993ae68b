/** What a person is told on the consent page for each scope and claim. */
export const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are when you sign in',
  email: 'See your email address',
  profile: 'See your name and basic profile',
  phone: 'See your phone number',
  address: 'See your postal address',
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
  given_name: 'Given name',
  family_name: 'Family name',
  middle_name: 'Middle name',
  nickname: 'Nickname',
  preferred_username: 'Preferred username',
  profile: 'Profile page address',
  picture: 'Picture',
  website: 'Website',
  gender: 'Gender',
  birthdate: 'Date of birth',
  zoneinfo: 'Time zone',
  locale: 'Language and region',
  phone_number: 'Phone number',
  phone_number_verified: 'Whether your phone number is verified',
  address: 'Postal address',
  updated_at: 'When your profile was last updated',
};

export function describeScope(scope: string): { name: string; description: string } {
  return { name: scope, description: SCOPE_DESCRIPTIONS[scope] ?? `Access "${scope}"` };
}

export function describeClaim(claim: string): { name: string; description: string } {
  return { name: claim, description: CLAIM_DESCRIPTIONS[claim] ?? claim };
}
