/**
 * Settings a deployer may tune, with their defaults and why.
 *
 * Every value here can be overridden by the environment variable named in the
 * comment (see README.md, "Configuration"). src/config/config.ts is the only
 * module that reads process.env; it parses these names with zod.
 */
export const defaults = {
  /** PORT: TCP port the HTTP server listens on. */
  port: 3000,
  /** LOG_LEVEL: debug | info | warn | error. */
  logLevel: 'info',
  /** DATA_DIR: where `npm start` keeps the embedded development database and generated development secrets. */
  dataDir: '.data',
  /** PRODUCT_NAME: shown on the sign-in pages. */
  productName: 'Identity',

  ttl: {
    /** ACCESS_TOKEN_TTL (seconds): bearer access tokens; short, because they cannot be recalled from resource servers that cache them. */
    accessToken: 60 * 60,
    /** AUTHORIZATION_CODE_TTL: RFC 6749 §4.1.2 recommends at most 10 minutes; one minute is plenty for a back-channel exchange. */
    authorizationCode: 60,
    /** ID_TOKEN_TTL */
    idToken: 60 * 60,
    /**
     * REFRESH_TOKEN_IDLE_TTL: a refresh token unused for this long expires. Each rotation
     * starts a new idle period, so an app in daily use stays signed in.
     */
    refreshTokenIdle: 14 * 24 * 60 * 60,
    /**
     * REFRESH_TOKEN_ABSOLUTE_TTL: hard cap on a chain of rotated refresh tokens, counted from
     * the original sign-in. After it the person signs in again, however active the app is.
     */
    refreshTokenAbsolute: 90 * 24 * 60 * 60,
    /** SESSION_TTL: the single sign-on session cookie and record. */
    session: 14 * 24 * 60 * 60,
    /** INTERACTION_TTL: how long a person has to finish a sign-in page. */
    interaction: 60 * 60,
    /** GRANT_TTL: remembered consent; tokens cannot outlive their grant. */
    grant: 365 * 24 * 60 * 60,
  },

  /**
   * Password guessing: SIGN_IN_FREE_ATTEMPTS wrong passwords in a row for one email are
   * answered normally; after that each attempt must wait 1 s, 2 s, 4 s, … up to
   * SIGN_IN_MAX_DELAY seconds after the previous failure. Counted per email address (known
   * or not, so the delay reveals nothing), in MongoDB (so every node sees it), forgotten after
   * a successful sign-in or an hour without failures.
   */
  signInFreeAttempts: 5,
  signInMaxDelay: 15 * 60,

  /**
   * Sign-in codes sent by email (passwordless sign-in, and a second factor for accounts
   * without an authenticator app). EMAIL_CODE_TTL: seconds a code stays valid;
   * EMAIL_CODE_RESEND_INTERVAL: at most one new code per email address this often;
   * EMAIL_CODE_MAX_ATTEMPTS: wrong entries after which a code is dead.
   */
  emailCode: { ttl: 10 * 60, resendInterval: 60, maxAttempts: 5 },

  /**
   * Second-factor guessing, counted per account across all sign-ins (email codes, TOTP and
   * recovery codes together): FACTOR_FREE_ATTEMPTS failures in a row are answered normally,
   * then each attempt waits 1 s, 2 s, 4 s, … up to FACTOR_MAX_DELAY seconds. A success resets it.
   */
  factorFreeAttempts: 5,
  factorMaxDelay: 15 * 60,

  /**
   * Authentication context classes published in discovery (`acr_values_supported`). A relying
   * party asks for a second factor with `acr_values=<multiFactor>`; the ID token's `acr` says
   * which level the sign-in reached. The multi-factor value is the one OpenID PAPE defined,
   * which other identity providers also accept.
   */
  acr: {
    singleFactor: 'urn:oidc-server:acr:1fa',
    multiFactor: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor',
  },

  /** AUDIT_RETENTION_DAYS: audit events older than this are deleted (TTL index, or the sweep). */
  auditRetentionDays: 90,

  /**
   * CLIENT_SECRET_GRACE_PERIOD (seconds): after an admin rotates a client secret, the previous
   * secret keeps working this long, so every instance of the app can switch over.
   */
  clientSecretGracePeriod: 24 * 60 * 60,

  /** The management API's scopes (its resource indicator is `$ISSUER/api/admin/v1`). */
  adminScopes: ['admin:clients:read', 'admin:clients:write', 'admin:users:read', 'admin:users:write', 'admin:audit:read'] as const,

  /** Largest form body our own pages accept (bytes). */
  formBodyLimit: 16 * 1024,

  /** Scopes the server knows; `offline_access` yields refresh tokens (with prompt=consent). */
  scopes: ['openid', 'offline_access', 'email', 'profile'] as const,

  /**
   * Claims released per scope. NOTE: giving `claims` to oidc-provider replaces its defaults,
   * so acr, amr, sid, auth_time and iss are listed again here or they vanish from ID tokens.
   */
  claims: {
    // auth_time, acr and amr are released with `openid` so every ID token says how and when the
    // person signed in, not only when a relying party asks for them (oidc-provider's default).
    openid: ['sub', 'auth_time', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'updated_at'],
    acr: null,
    amr: null,
    sid: null,
    auth_time: null,
    iss: null,
  },
} as const;
