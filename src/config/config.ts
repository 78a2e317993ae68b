import { z } from 'zod';

import { defaults } from '../../config/defaults.js';

/**
 * The one reader of process.env: parse once at start, fail fast naming the bad setting.
 */

const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const encryptionKeyList = z.string().transform((raw, ctx) => {
  const keys: { id: string; key: Buffer }[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sep = entry.indexOf(':');
    const id = sep > 0 ? entry.slice(0, sep) : '';
    const material = sep > 0 ? entry.slice(sep + 1) : '';
    const key = Buffer.from(material, 'base64url');
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(id) || key.length !== 32) {
      ctx.addIssue({
        code: 'custom',
        message: 'each entry must be ID:KEY where ID is 1-32 of [A-Za-z0-9_-] and KEY is 32 bytes in base64url (openssl rand -base64 32)',
      });
      return z.NEVER;
    }
    keys.push({ id, key });
  }
  if (keys.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'at least one key is required' });
    return z.NEVER;
  }
  return keys;
});

const cookieKeyList = z.string().transform((raw, ctx) => {
  const keys = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (keys.length === 0 || keys.some((k) => k.length < 32)) {
    ctx.addIssue({ code: 'custom', message: 'a comma-separated list of secrets, each at least 32 characters' });
    return z.NEVER;
  }
  return keys;
});

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(defaults.port),
  ISSUER: z.url({ protocol: /^https?$/ }).optional(),
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://').optional(),
  COOKIE_KEYS: cookieKeyList.optional(),
  ENCRYPTION_KEYS: encryptionKeyList.optional(),
  TRUST_PROXY: booleanFlag.default(false),
  PROXY_HOPS: z.coerce.number().int().min(1).max(10).default(1),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default(defaults.logLevel),
  DATA_DIR: z.string().min(1).default(defaults.dataDir),
  EMBEDDED_DB: z.enum(['postgres', 'sqlite']).default(defaults.embeddedDb),
  PRODUCT_NAME: z.string().min(1).max(60).default(defaults.productName),
  // NIST SP 800-63B §3.1.1.2: never under 8; at most 64, since passwords of 64 must be accepted.
  PASSWORD_MIN_LENGTH: z.coerce.number().int().min(8, 'must be at least 8').max(64, 'must be at most 64').default(defaults.passwordMinLength),
  SEED_DEMO: booleanFlag.optional(),
  ACCESS_TOKEN_TTL: seconds(defaults.ttl.accessToken),
  AUTHORIZATION_CODE_TTL: seconds(defaults.ttl.authorizationCode),
  ID_TOKEN_TTL: seconds(defaults.ttl.idToken),
  REFRESH_TOKEN_IDLE_TTL: seconds(defaults.ttl.refreshTokenIdle),
  REFRESH_TOKEN_ABSOLUTE_TTL: seconds(defaults.ttl.refreshTokenAbsolute),
  SESSION_TTL: seconds(defaults.ttl.session),
  SESSION_IDLE_TTL: seconds(defaults.ttl.sessionIdle),
  ADMIN_SESSION_MAX_AGE: seconds(defaults.adminSession.maxAge),
  ADMIN_SESSION_IDLE: seconds(defaults.adminSession.idle),
  RECENT_AUTH_MAX_AGE: seconds(defaults.recentAuthMaxAge),
  IP_LIMIT_WINDOW: seconds(defaults.ipLimits.windowSeconds),
  IP_SIGN_IN_FAILURE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(defaults.ipLimits.signInFailures),
  IP_CODE_SEND_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(defaults.ipLimits.codeSends),
  IP_CLIENT_AUTH_FAILURE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(defaults.ipLimits.clientAuthFailures),
  EMAIL_CODE_ADDRESS_LIMIT: z.coerce.number().int().min(1).max(10_000).default(defaults.emailCodeAddressLimits.perHour),
  EMAIL_CODE_ADDRESS_IP_LIMIT: z.coerce.number().int().min(1).max(10_000).default(defaults.emailCodeAddressLimits.perHourFromOneIp),
  INTERACTION_TTL: seconds(defaults.ttl.interaction),
  GRANT_TTL: seconds(defaults.ttl.grant),
  SIGN_IN_FREE_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(defaults.signInFreeAttempts),
  SIGN_IN_MAX_DELAY: seconds(defaults.signInMaxDelay),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional(),
  SMTP_HOST: z.string().min(1).max(253).optional(),
  SMTP_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  SMTP_USER: z.string().min(1).optional(),
  SMTP_PASSWORD: z.string().min(1).optional(),
  SMTP_SECURE: booleanFlag.optional(),
  MAIL_FROM: z.string().min(3).max(320).optional(),
  // The mail outbox (src/mail/outbox.service.ts); defaults kept here, beside their only reader.
  MAIL_RETRY_MAX_AGE: z.coerce.number().int().min(60).max(30 * 86_400).default(86_400),
  MAIL_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(1000).default(30),
  MAIL_RETRY_MAX_DELAY: z.coerce.number().int().min(1).max(86_400).default(900),
  MAIL_WORKER_INTERVAL: z.coerce.number().int().min(1).max(3600).default(5),
  MAIL_SENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(365).default(7),
  EMAIL_CODE_TTL: seconds(defaults.emailCode.ttl),
  EMAIL_CODE_RESEND_INTERVAL: z.coerce.number().int().min(0).default(defaults.emailCode.resendInterval),
  EMAIL_CODE_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(defaults.emailCode.maxAttempts),
  EMAIL_CODE_NO_ACCOUNT_MAIL: booleanFlag.default(false),
  SIGN_UP: z.enum(['open', 'invite', 'closed']).optional(),
  SIGN_UP_IP_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(defaults.signUp.perIp),
  SIGN_UP_ADDRESS_LIMIT: z.coerce.number().int().min(1).max(10_000).default(defaults.signUp.perAddressPerHour),
  PASSWORD_RESET: booleanFlag.default(true),
  PASSWORD_RESET_IP_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(defaults.passwordReset.perIp),
  PASSWORD_RESET_ADDRESS_LIMIT: z.coerce.number().int().min(1).max(10_000).default(defaults.passwordReset.perAddressPerHour),
  PASSWORD_RESET_NO_ACCOUNT_MAIL: booleanFlag.default(true),
  MFA_REQUIRED_FOR_ADMINS: booleanFlag.default(true),
  MFA_EMAIL_FALLBACK: booleanFlag.default(true),
  NOTIFY_NEW_SIGN_IN: booleanFlag.default(false),
  FACTOR_FREE_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(defaults.factorFreeAttempts),
  FACTOR_MAX_DELAY: seconds(defaults.factorMaxDelay),
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(defaults.auditRetentionDays),
  CLIENT_SECRET_GRACE_PERIOD: z.coerce.number().int().min(0).default(defaults.clientSecretGracePeriod),
  DYNAMIC_REGISTRATION: booleanFlag.default(false),
  // Signing key rotation (src/oidc/key-rotation.service.ts): how long a new key is published before it signs.
  KEY_PREPUBLISH_SECONDS: z.coerce.number().int().min(0).max(30 * 86_400).default(60 * 60),
  // Prometheus metrics (src/metrics): on their own port, or on the main port behind a bearer token.
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]{32,512}$/, 'must be 32 to 512 printable characters without spaces (openssl rand -base64 32)')
    .optional(),
  PROFILE_PHONE: booleanFlag.default(false),
  PROFILE_ADDRESS: booleanFlag.default(false),
});

export type Env = Record<string, string | undefined>;

export interface Ttl {
  accessToken: number;
  authorizationCode: number;
  idToken: number;
  refreshTokenIdle: number;
  refreshTokenAbsolute: number;
  /** The absolute lifetime of an SSO session. */
  session: number;
  /** An SSO session unused this long ends. */
  sessionIdle: number;
  interaction: number;
  grant: number;
}

/** How mail leaves: an SMTP server, or (development and tests only) the log. */
export type SmtpSettings =
  | { url: string }
  | { host: string; port: number; secure: boolean; user?: string | undefined; password?: string | undefined };

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  issuer: string;
  mongodbUri: string | undefined;
  cookieKeys: string[];
  encryptionKeys: { id: string; key: Buffer }[];
  trustProxy: boolean;
  /** With trustProxy: how many proxies stand in front (X-Forwarded-For is read this many entries from the right). */
  proxyHops: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  dataDir: string;
  /** The embedded database's storage (without MONGODB_URI): FerretDB on PostgreSQL or on SQLite. */
  embeddedDb: 'postgres' | 'sqlite';
  productName: string;
  /** New passwords: at least this many characters (password-policy.ts). */
  passwordMinLength: number;
  seedDemo: boolean;
  ttl: Ttl;
  signInThrottle: { freeAttempts: number; maxDelaySeconds: number };
  formBodyLimit: number;
  mail: {
    /** Undefined: mail is written to the log (never in production, see loadConfig). */
    smtp: SmtpSettings | undefined;
    from: string;
    /** The outbox: retries with back-off up to maxAttempts or retryMaxAgeSeconds, then dead-letter. */
    outbox: {
      retryMaxAgeSeconds: number;
      maxAttempts: number;
      retryMaxDelaySeconds: number;
      workerIntervalSeconds: number;
      sentRetentionDays: number;
    };
  };
  emailCode: {
    ttlSeconds: number;
    resendIntervalSeconds: number;
    maxAttempts: number;
    /** Mail "you have no account" to unknown addresses that ask for a code (default: send nothing). */
    noAccountMail: boolean;
  };
  /**
   * Self-service sign-up: `open` to anyone, `invite` only with an invitation, `closed`. Counts per
   * client IP (in `ipLimits.windowSeconds`) and per address (per hour).
   */
  signUp: { mode: 'open' | 'invite' | 'closed'; codeTtlSeconds: number; perIp: number; perAddressPerHour: number };
  /** Self-service password reset by a code and a link by email; requests per IP and per address. */
  passwordReset: { enabled: boolean; ttlSeconds: number; grantTtlSeconds: number; perIp: number; perAddressPerHour: number; noAccountMail: boolean };
  mfa: {
    /** Accounts with the admin role always need a second factor. */
    requiredForAdmins: boolean;
    /** A code by email may serve as the second factor for accounts that have no authenticator app yet. */
    emailFallback: boolean;
  };
  factorThrottle: { freeAttempts: number; maxDelaySeconds: number };
  /** Per client IP, each "at most N per windowSeconds" (src/limits). */
  ipLimits: { windowSeconds: number; signInFailures: number; codeSends: number; clientAuthFailures: number };
  /** Sign-in codes mailed to one address per hour: in all, and from one IP. */
  emailCodeAddressLimits: { perHour: number; perHourFromOneIp: number };
  /** The admin console's own limits on the admin's authentication: its age, and idle time (seconds). */
  adminSession: { maxAgeSeconds: number; idleSeconds: number };
  /** Sensitive account changes need an authentication at most this old (seconds). */
  recentAuthMaxAgeSeconds: number;
  /**
   * Notice mails (src/accounts/account-notices.service.ts). `newSignIn`: mail the owner when an
   * account signs in from a browser it has not signed in from before (off by default: on shared
   * or cookie-clearing browsers it mails often).
   */
  notices: { newSignIn: boolean };
  acr: { singleFactor: string; emailSecondFactor: string; multiFactor: string };
  audit: { retentionDays: number };
  clientSecretGracePeriodSeconds: number;
  /** A rotated-in signing key is in the JWKS this long before it signs (relying parties' JWKS caches). */
  signingKeys: { prepublishSeconds: number };
  /** RFC 7591 dynamic client registration (with initial access tokens admins issue). */
  dynamicRegistration: boolean;
  /**
   * Whether accounts store a phone number and a postal address, which the `phone` and `address`
   * scopes then release (OIDC Core §5.4); off by default: nothing is collected that is not needed.
   */
  profileScopes: { phone: boolean; address: boolean };
  /** The management API: its resource indicator (RFC 8707) and scopes. */
  adminApi: { resource: string; scopes: readonly string[] };
  /**
   * Prometheus metrics: `port` serves them on a port of their own (the token, when set, is then
   * required there too); else `token` serves them on the main port at /metrics to a bearer of it.
   * Neither: not collected, not served.
   */
  metrics: { enabled: boolean; port: number | undefined; token: string | undefined };
}

/** Secrets generated for development (see dev-secrets.ts), used only when the environment gives none. */
export interface DevSecrets {
  cookieKeys: string[];
  encryptionKeys: { id: string; key: Buffer }[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Env, devSecrets?: DevSecrets): Config {
  // NOTE: treat empty strings as unset, the way .env files and compose files write "unset".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(env)'}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';

  const missing: string[] = [];
  if (production && !e.COOKIE_KEYS) missing.push('COOKIE_KEYS');
  if (production && !e.ENCRYPTION_KEYS) missing.push('ENCRYPTION_KEYS');
  if (production && !e.ISSUER) missing.push('ISSUER');
  const smtp: SmtpSettings | undefined = e.SMTP_URL
    ? { url: e.SMTP_URL }
    : e.SMTP_HOST
      ? {
          host: e.SMTP_HOST,
          port: e.SMTP_PORT ?? (e.SMTP_SECURE ? 465 : 587),
          secure: e.SMTP_SECURE ?? e.SMTP_PORT === 465,
          user: e.SMTP_USER,
          password: e.SMTP_PASSWORD,
        }
      : undefined;
  // Sign-in codes must really leave in production; the log transport is for development only.
  if (production && !smtp) missing.push('SMTP_URL (or SMTP_HOST)');
  if (production && !e.MAIL_FROM) missing.push('MAIL_FROM');
  if (missing.length > 0) {
    throw new ConfigError(
      `Invalid configuration:\n${missing.map((m) => `  ${m}: required when NODE_ENV=production (no development defaults in production)`).join('\n')}`,
    );
  }
  const cookieKeys = e.COOKIE_KEYS ?? devSecrets?.cookieKeys;
  const encryptionKeys = e.ENCRYPTION_KEYS ?? devSecrets?.encryptionKeys;
  if (!cookieKeys || !encryptionKeys) {
    throw new ConfigError(
      `Invalid configuration:\n  ${!cookieKeys ? 'COOKIE_KEYS' : 'ENCRYPTION_KEYS'}: not set and no development secrets were generated`,
    );
  }

  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '');
  if (production && !issuer.startsWith('https://')) {
    throw new ConfigError('Invalid configuration:\n  ISSUER: must be https:// when NODE_ENV=production');
  }
  if (e.SESSION_TTL < e.SESSION_IDLE_TTL) {
    throw new ConfigError('Invalid configuration:\n  SESSION_IDLE_TTL: must be at most SESSION_TTL');
  }
  if (e.REFRESH_TOKEN_ABSOLUTE_TTL < e.REFRESH_TOKEN_IDLE_TTL) {
    throw new ConfigError(
      'Invalid configuration:\n  REFRESH_TOKEN_ABSOLUTE_TTL: must be at least REFRESH_TOKEN_IDLE_TTL',
    );
  }

  if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
    throw new ConfigError('Invalid configuration:\n  METRICS_PORT: must differ from PORT (to serve metrics on the main port, set METRICS_TOKEN instead)');
  }

  // The demo seed creates a user with a published password: only ever on this machine.
  const loopbackIssuer = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(issuer).hostname);
  if (e.SEED_DEMO === true && !loopbackIssuer) {
    throw new ConfigError(
      'Invalid configuration:\n  SEED_DEMO: the demo user has a published password; it is seeded only with a loopback ISSUER (localhost, 127.0.0.1, [::1])',
    );
  }

  return {
    env: e.NODE_ENV,
    port: e.PORT,
    issuer,
    mongodbUri: e.MONGODB_URI,
    cookieKeys,
    encryptionKeys,
    trustProxy: e.TRUST_PROXY,
    proxyHops: e.PROXY_HOPS,
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    embeddedDb: e.EMBEDDED_DB,
    productName: e.PRODUCT_NAME,
    passwordMinLength: e.PASSWORD_MIN_LENGTH,
    seedDemo: e.SEED_DEMO ?? (e.NODE_ENV === 'development' && loopbackIssuer),
    ttl: {
      accessToken: e.ACCESS_TOKEN_TTL,
      authorizationCode: e.AUTHORIZATION_CODE_TTL,
      idToken: e.ID_TOKEN_TTL,
      refreshTokenIdle: e.REFRESH_TOKEN_IDLE_TTL,
      refreshTokenAbsolute: e.REFRESH_TOKEN_ABSOLUTE_TTL,
      session: e.SESSION_TTL,
      sessionIdle: e.SESSION_IDLE_TTL,
      interaction: e.INTERACTION_TTL,
      grant: e.GRANT_TTL,
    },
    signInThrottle: { freeAttempts: e.SIGN_IN_FREE_ATTEMPTS, maxDelaySeconds: e.SIGN_IN_MAX_DELAY },
    formBodyLimit: defaults.formBodyLimit,
    mail: {
      smtp,
      from: e.MAIL_FROM ?? `${e.PRODUCT_NAME ?? defaults.productName} <no-reply@localhost>`,
      outbox: {
        retryMaxAgeSeconds: e.MAIL_RETRY_MAX_AGE,
        maxAttempts: e.MAIL_MAX_ATTEMPTS,
        retryMaxDelaySeconds: e.MAIL_RETRY_MAX_DELAY,
        workerIntervalSeconds: e.MAIL_WORKER_INTERVAL,
        sentRetentionDays: e.MAIL_SENT_RETENTION_DAYS,
      },
    },
    emailCode: {
      ttlSeconds: e.EMAIL_CODE_TTL,
      resendIntervalSeconds: e.EMAIL_CODE_RESEND_INTERVAL,
      maxAttempts: e.EMAIL_CODE_MAX_ATTEMPTS,
      noAccountMail: e.EMAIL_CODE_NO_ACCOUNT_MAIL,
    },
    signUp: {
      // Open for the development demo on this machine (the condition SEED_DEMO defaults on), closed
      // anywhere else unless the deployer opens it.
      mode: e.SIGN_UP ?? (e.NODE_ENV === 'development' && loopbackIssuer ? 'open' : 'closed'),
      codeTtlSeconds: defaults.signUp.codeTtl,
      perIp: e.SIGN_UP_IP_LIMIT,
      perAddressPerHour: e.SIGN_UP_ADDRESS_LIMIT,
    },
    passwordReset: {
      enabled: e.PASSWORD_RESET,
      ttlSeconds: defaults.passwordReset.ttl,
      grantTtlSeconds: defaults.passwordReset.grantTtl,
      perIp: e.PASSWORD_RESET_IP_LIMIT,
      perAddressPerHour: e.PASSWORD_RESET_ADDRESS_LIMIT,
      noAccountMail: e.PASSWORD_RESET_NO_ACCOUNT_MAIL,
    },
    mfa: { requiredForAdmins: e.MFA_REQUIRED_FOR_ADMINS, emailFallback: e.MFA_EMAIL_FALLBACK },
    factorThrottle: { freeAttempts: e.FACTOR_FREE_ATTEMPTS, maxDelaySeconds: e.FACTOR_MAX_DELAY },
    ipLimits: {
      windowSeconds: e.IP_LIMIT_WINDOW,
      signInFailures: e.IP_SIGN_IN_FAILURE_LIMIT,
      codeSends: e.IP_CODE_SEND_LIMIT,
      clientAuthFailures: e.IP_CLIENT_AUTH_FAILURE_LIMIT,
    },
    emailCodeAddressLimits: { perHour: e.EMAIL_CODE_ADDRESS_LIMIT, perHourFromOneIp: e.EMAIL_CODE_ADDRESS_IP_LIMIT },
    adminSession: { maxAgeSeconds: e.ADMIN_SESSION_MAX_AGE, idleSeconds: e.ADMIN_SESSION_IDLE },
    recentAuthMaxAgeSeconds: e.RECENT_AUTH_MAX_AGE,
    notices: { newSignIn: e.NOTIFY_NEW_SIGN_IN },
    acr: { ...defaults.acr },
    audit: { retentionDays: e.AUDIT_RETENTION_DAYS },
    clientSecretGracePeriodSeconds: e.CLIENT_SECRET_GRACE_PERIOD,
    signingKeys: { prepublishSeconds: e.KEY_PREPUBLISH_SECONDS },
    dynamicRegistration: e.DYNAMIC_REGISTRATION,
    profileScopes: { phone: e.PROFILE_PHONE, address: e.PROFILE_ADDRESS },
    adminApi: { resource: `${issuer}/api/admin/v1`, scopes: defaults.adminScopes },
    metrics: { enabled: e.METRICS_PORT !== undefined || e.METRICS_TOKEN !== undefined, port: e.METRICS_PORT, token: e.METRICS_TOKEN },
  };
}
