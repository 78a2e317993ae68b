import { z } from 'zod';

/**
 * Response bodies of the management API, as zod schemas: the router serialises every reply
 * through its schema (members not listed here are dropped: an allowlist, so a field added to a
 * service view is not published by accident) and the OpenAPI document shows them.
 *
 * Member names are the services' own (camelCase), as are the request bodies' (the services'
 * input schemas). Times are RFC 3339 strings in UTC.
 */

const timestamp = z.iso.datetime().describe('RFC 3339 date-time, UTC');

const listCursor = z.string().optional().describe('Pass as `cursor` to get the next page; absent on the last page');

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

export const clientViewSchema = z
  .object({
    clientId: z.string(),
    name: z.string(),
    logoUri: z.string().optional(),
    public: z.boolean().describe('tokenEndpointAuthMethod none: no secret, PKCE only'),
    redirectUris: z.array(z.string()),
    postLogoutRedirectUris: z.array(z.string()),
    backchannelLogoutUri: z.string().optional().describe('OpenID Connect Back-Channel Logout: where logout tokens are POSTed'),
    backchannelLogoutSessionRequired: z.boolean().describe('Logout tokens carry the session id (sid)'),
    grantTypes: z.array(z.string()),
    responseTypes: z.array(z.string()),
    applicationType: z.enum(['web', 'native']),
    tokenEndpointAuthMethod: z.string(),
    jwksUri: z.string().optional(),
    hasJwks: z.boolean().describe('Whether the client has registered public keys (jwks)'),
    scopes: z.array(z.string()).describe('Scopes the client may ask for'),
    requireMfa: z.boolean(),
    firstParty: z.boolean(),
    skipPkce: z.boolean().describe('An admin let this confidential client make authorization requests without PKCE'),
    allowedResources: z.array(z.string()).describe('Identifiers of the API resources (RFC 8707) this client may get access tokens for'),
    defaultResource: z.string().optional().describe('The API resource a request without `resource` is for'),
    dynamic: z.boolean().describe('Registered through RFC 7591 dynamic client registration'),
    accessTokenTtl: z.number().int().optional(),
    idTokenTtl: z.number().int().optional(),
    refreshTokenTtl: z.number().int().optional(),
    secretRotatedAt: timestamp.optional(),
    previousSecretExpiresAt: timestamp.optional().describe('Until when the secret before the last rotation still works'),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .describe('An OAuth client (never its secret)');

export const clientWithSecretSchema = clientViewSchema
  .extend({
    clientSecret: z
      .string()
      .optional()
      .describe('The client secret, shown only in this response (clients that authenticate with a secret); store it now'),
  })
  .describe('A client just created or changed, with its new secret when one was made');

export const clientPageSchema = z.object({
  clients: z.array(clientViewSchema),
  nextCursor: listCursor,
  total: z.number().int().describe('How many clients match the search, over all pages'),
});

export const secretRotationSchema = z
  .object({
    clientSecret: z.string().describe('The new secret, shown only in this response'),
    previousSecretExpiresAt: timestamp.describe('The secret before this one works until then (CLIENT_SECRET_GRACE_PERIOD)'),
  })
  .describe('A new client secret');

// ---------------------------------------------------------------------------------------------
// API resources
// ---------------------------------------------------------------------------------------------

export const apiResourceViewSchema = z
  .object({
    identifier: z.string().describe('The absolute URI access tokens for this API carry as `aud` (RFC 8707); never changes'),
    name: z.string().describe('Shown to people on the consent page'),
    scopes: z
      .array(z.object({ name: z.string(), description: z.string().describe('What the consent page says the app may do with it') }))
      .describe('The scopes this API defines'),
    tokenFormat: z.enum(['jwt', 'opaque']).describe('`jwt`: RFC 9068 JWT access tokens the API checks against the JWKS; `opaque`: the API introspects them'),
    accessTokenTtl: z.number().int().optional().describe('Seconds; absent: ACCESS_TOKEN_TTL (a client’s own access token lifetime still wins)'),
    introspectionClients: z.array(z.string()).describe('Client ids that may introspect this API’s tokens besides the client a token was issued to'),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .describe('An API resource: one of the apps’ own APIs that access tokens can be for');

export const apiResourceListSchema = z.object({ resources: z.array(apiResourceViewSchema).describe('By name, then identifier') });

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

export const userViewSchema = z
  .object({
    id: z.string().describe('The account id (the `sub` claim)'),
    email: z.string(),
    emailVerified: z.boolean(),
    name: z.string().optional(),
    roles: z.array(z.enum(['admin'])),
    disabled: z.boolean(),
    hasPassword: z.boolean(),
    totpEnabled: z.boolean(),
    passwordResetRequired: z.boolean().describe('The next sign-in ends on the new-password page'),
    profile: z
      .object({
        givenName: z.string().optional(),
        familyName: z.string().optional(),
        middleName: z.string().optional(),
        nickname: z.string().optional(),
        preferredUsername: z.string().optional(),
        profile: z.string().optional(),
        picture: z.string().optional(),
        website: z.string().optional(),
        gender: z.string().optional(),
        birthdate: z.string().optional(),
        zoneinfo: z.string().optional(),
        locale: z.string().optional(),
        phoneNumber: z.string().optional(),
        phoneNumberVerified: z.boolean().optional(),
        address: z
          .object({
            formatted: z.string().optional(),
            streetAddress: z.string().optional(),
            locality: z.string().optional(),
            region: z.string().optional(),
            postalCode: z.string().optional(),
            country: z.string().optional(),
          })
          .optional(),
      })
      .describe('Standard claims the account holds (OpenID Connect Core §5.1), under the names the update takes'),
    profileUpdatedAt: timestamp.describe('When the name or the profile last changed: the `updated_at` claim'),
    signInMethods: z.array(z.enum(['password', 'email_code', 'totp'])),
    mfa: z.object({
      totp: z.boolean(),
      enabledAt: timestamp.optional(),
      recoveryCodesLeft: z.number().int(),
    }),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .describe('A user (never a password or a second-factor secret)');

export const userPageSchema = z.object({
  users: z.array(userViewSchema),
  nextCursor: listCursor,
  total: z.number().int().describe('How many users match the search, over all pages'),
});

// ---------------------------------------------------------------------------------------------
// Audit events
// ---------------------------------------------------------------------------------------------

const auditActorSchema = z.object({
  type: z.enum(['account', 'client', 'anonymous', 'system']),
  id: z.string().optional().describe('Account id or client id'),
  label: z.string().optional().describe("The account's email or the client's name"),
});

export const auditEventSchema = z
  .object({
    id: z.string(),
    at: timestamp,
    action: z.string().describe('Namespaced verb, e.g. `sign_in.password`, `client.created`, `token.issued`'),
    outcome: z.enum(['success', 'failure']),
    actor: auditActorSchema,
    target: z
      .object({
        type: z.enum(['account', 'client', 'registration_token', 'invitation', 'grant', 'token', 'session', 'signing_key', 'api_resource']),
        id: z.string(),
        label: z.string().optional(),
      })
      .optional(),
    clientId: z.string().optional().describe('The OAuth client the event happened through'),
    ip: z.string().optional(),
    userAgent: z.string().optional(),
    reason: z.string().optional().describe('Why it failed: a reason code'),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])).optional(),
  })
  .describe('One audit event');

export const auditPageSchema = z.object({
  events: z.array(auditEventSchema).describe('Newest first'),
  nextCursor: listCursor.describe('Pass as `cursor` to get the next (older) page; absent on the last page'),
});

// ---------------------------------------------------------------------------------------------
// Registration tokens
// ---------------------------------------------------------------------------------------------

export const registrationTokenViewSchema = z
  .object({
    id: z.string().describe('Derived from the token (a hash); never the token itself'),
    createdAt: timestamp,
    expiresAt: timestamp.optional().describe('Absent: the token does not expire'),
    usesAllowed: z.number().int().optional().describe('Absent: unlimited'),
    usesCount: z.number().int(),
    revoked: z.boolean(),
    createdBy: auditActorSchema.optional(),
  })
  .describe('An initial access token for RFC 7591 dynamic client registration');

export const createdRegistrationTokenSchema = registrationTokenViewSchema
  .extend({
    token: z.string().describe('The bearer token for the registration endpoint, shown only in this response'),
  })
  .describe('A new registration token, with its value');

export const registrationTokenListSchema = z.object({ registrationTokens: z.array(registrationTokenViewSchema).describe('Newest first') });

// ---------------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------------

export const invitationViewSchema = z
  .object({
    id: z.string().describe('The invitation id (not its token)'),
    email: z.string().optional().describe('The only address that may sign up with it; absent for an open invitation'),
    createdAt: timestamp,
    expiresAt: timestamp,
    maxUses: z.number().int().describe('How many accounts it may create'),
    usesCount: z.number().int(),
    revokedAt: timestamp.optional(),
    createdBy: auditActorSchema.optional(),
    state: z.enum(['pending', 'used', 'expired', 'revoked']).describe('revoked, else used (no uses left), else expired, else pending'),
  })
  .describe('An invitation to sign up (never its token)');

export const createdInvitationSchema = invitationViewSchema
  .extend({
    link: z.string().describe('The sign-up link carrying the token, shown only in this response'),
    mailed: z.boolean().describe('Whether the link was mailed to the bound address'),
  })
  .describe('A new invitation, with its link');

export const invitationListSchema = z.object({ invitations: z.array(invitationViewSchema).describe('Newest first') });
