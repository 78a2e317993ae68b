import type { Connection } from 'mongoose';

import { createAccountModel } from '../../src/accounts/account.model.js';
import type { AccountService } from '../../src/accounts/account.service.js';
import { createAccountService } from '../../src/accounts/account.service.js';
import { createAccountNotices } from '../../src/accounts/account-notices.service.js';
import { createBackgroundMail } from '../../src/accounts/background-mail.js';
import type { BackgroundMail } from '../../src/accounts/background-mail.js';
import { createEmailCodeService } from '../../src/accounts/email-code.service.js';
import type { EmailCodeService } from '../../src/accounts/email-code.service.js';
import { createPasswordResetService } from '../../src/accounts/password-reset.service.js';
import type { PasswordResetService } from '../../src/accounts/password-reset.service.js';
import { selfServiceLinks } from '../../src/accounts/self-service-links.js';
import { createSignUpService } from '../../src/accounts/sign-up.service.js';
import type { PasswordPolicy, SignUpService } from '../../src/accounts/sign-up.service.js';
import { createAuditService } from '../../src/audit/audit.service.js';
import type { AuditService } from '../../src/audit/audit.service.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config, Env } from '../../src/config/config.js';
import { connectDatabase } from '../../src/db/connect.js';
import { createAttemptLimiter } from '../../src/limits/attempt-limiter.js';
import { createSignInLimits } from '../../src/limits/sign-in-limits.js';
import type { SignInLimits } from '../../src/limits/sign-in-limits.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMailer } from '../../src/mail/mailer.js';
import type { Mailer } from '../../src/mail/mailer.js';
import { testDatabaseUri } from '../support/database.js';
import { startMailServer } from '../support/mail-server.js';
import type { MailServer } from '../support/mail-server.js';
import { TEST_COOKIE_KEY, TEST_ENCRYPTION_KEYS } from '../support/test-server.js';

/**
 * The self-service services built as src/deps.ts builds them, on a database and an SMTP server
 * of the test's own, with a clock the test moves. The password policy is a minimal real one
 * (length only); the real policy is wired in deps.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

export const lengthPolicy: PasswordPolicy = {
  check: async (password) => (password.length >= 12 ? { ok: true } : { ok: false, reason: 'too_short', message: 'Use at least 12 characters.' }),
};

export interface SelfServiceHarness {
  config: Config;
  connection: Connection;
  smtp: MailServer;
  mailer: Mailer;
  mail: BackgroundMail;
  accounts: AccountService;
  emailCodes: EmailCodeService;
  limits: SignInLimits;
  audit: AuditService;
  signUp: SignUpService;
  passwordReset: PasswordResetService;
  Account: ReturnType<typeof createAccountModel>;
  clock: { now(): number; advance(seconds: number): void };
  close(): Promise<void>;
}

export async function startSelfService(label: string, env: Env = {}, options: { maxPoolSize?: number } = {}): Promise<SelfServiceHarness> {
  const smtp = await startMailServer();
  // NOTE: a burst test caps the driver's pool: the embedded FerretDB on SQLite answers "database is
  // locked" when a hundred writes reach it at once; the services still race a hundred callers.
  const base = testDatabaseUri(label);
  const uri = options.maxPoolSize ? `${base}${base.includes('?') ? '&' : '?'}maxPoolSize=${options.maxPoolSize}` : base;
  const config = loadConfig({
    NODE_ENV: 'test',
    ISSUER: 'http://127.0.0.1:4999',
    MONGODB_URI: uri,
    COOKIE_KEYS: TEST_COOKIE_KEY,
    ENCRYPTION_KEYS: TEST_ENCRYPTION_KEYS,
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Id <id@example.test>',
    SIGN_UP: 'open',
    IP_SIGN_IN_FAILURE_LIMIT: '100000',
    EMAIL_CODE_ADDRESS_LIMIT: '10000',
    EMAIL_CODE_ADDRESS_IP_LIMIT: '10000',
    ...env,
  });
  const logger = createLogger({ level: 'error', format: 'json', write: () => {} });
  const connection = await connectDatabase(uri, logger);
  const db = connection.db!;
  // A year ahead of the real clock: nothing stored may expire by real time mid-test.
  let at = (Math.floor(Date.now() / DAY_MS) + 366) * DAY_MS;
  const clock = { now: () => at, advance: (seconds: number) => void (at += seconds * 1000) };
  // The services' Clock over the same time.
  const serviceClock = { now: () => new Date(at), nowMs: () => at };
  const Account = createAccountModel(connection);
  const accounts = createAccountService({ Account, logger });
  await accounts.ensureIndexes();
  const emailCodes = createEmailCodeService(
    db,
    {
      ttlSeconds: config.emailCode.ttlSeconds,
      resendIntervalSeconds: config.emailCode.resendIntervalSeconds,
      maxAttempts: config.emailCode.maxAttempts,
      purposes: { 'sign-up': { ttlSeconds: config.signUp.codeTtlSeconds }, 'password-reset': { ttlSeconds: config.passwordReset.ttlSeconds } },
    },
    serviceClock,
  );
  await emailCodes.ensureIndexes();
  const limiter = createAttemptLimiter(db, serviceClock);
  await limiter.ensureIndexes();
  const limits = createSignInLimits(limiter, config);
  const audit = createAuditService({ db, logger, retentionDays: 30 });
  const mailer = createMailer({ config, logger });
  const mail = createBackgroundMail(mailer, logger);
  // Notices straight through the mailer (no outbox here), as the outbox would send them.
  const notices = createAccountNotices({
    outbox: { enqueueTemplate: async (to, template, locals) => (await mailer.sendTemplate(to, template, locals), { id: 'direct', sent: true }) },
    issuer: config.issuer,
    logger,
    clock: serviceClock,
  });
  const shared = { config, accounts, db, emailCodes, limits, passwordPolicy: lengthPolicy, mail, links: selfServiceLinks(config.issuer), audit, logger, notices, now: clock.now };
  const signUp = createSignUpService({ ...shared, Account });
  const passwordReset = createPasswordResetService(shared);
  await signUp.ensureIndexes();
  await passwordReset.ensureIndexes();
  return {
    config,
    connection,
    smtp,
    mailer,
    mail,
    accounts,
    emailCodes,
    limits,
    audit,
    signUp,
    passwordReset,
    Account,
    clock,
    async close() {
      await mail.idle();
      mailer.close();
      await smtp.close();
      await connection.db?.dropDatabase();
      await connection.close();
    },
  };
}
