import type Provider from 'oidc-provider';
import type { Connection, mongo } from 'mongoose';

import { createAccountModel } from '../accounts/account.model.js';
import type { AccountService } from '../accounts/account.service.js';
import { createAccountService } from '../accounts/account.service.js';
import type { EmailCodeService } from '../accounts/email-code.service.js';
import { createEmailCodeService } from '../accounts/email-code.service.js';
import type { TotpService } from '../accounts/totp.service.js';
import { createTotpService } from '../accounts/totp.service.js';
import { createBackgroundMail } from '../accounts/background-mail.js';
import type { PasswordPolicy } from '../accounts/password-policy.js';
import { createPasswordPolicy } from '../accounts/password-policy.js';
import type { PasswordResetService } from '../accounts/password-reset.service.js';
import { createPasswordResetService } from '../accounts/password-reset.service.js';
import { selfServiceLinks } from '../accounts/self-service-links.js';
import type { SignUpService } from '../accounts/sign-up.service.js';
import { createSignUpService } from '../accounts/sign-up.service.js';
import type { AccountNotices } from '../accounts/account-notices.js';
import { createAccountNotices } from '../accounts/account-notices.service.js';
import type { KnownBrowserService } from '../accounts/known-browser.service.js';
import { createKnownBrowserService } from '../accounts/known-browser.service.js';
import type { AccountAccessService } from '../accounts/account-access.service.js';
import { createAccountAccessService } from '../accounts/account-access.service.js';
import { createAccountDeletionService } from '../accounts/account-deletion.service.js';
import type { UserAdminService } from '../accounts/user-admin.service.js';
import { createUserAdminService } from '../accounts/user-admin.service.js';
import type { AuditService } from '../audit/audit.service.js';
import { createAuditService } from '../audit/audit.service.js';
import { createClientModel } from '../clients/client.model.js';
import type { ClientService } from '../clients/client.service.js';
import { createClientService } from '../clients/client.service.js';
import type { ApiResourceService } from '../resources/api-resource.service.js';
import { createApiResourceService } from '../resources/api-resource.service.js';
import type { RegistrationPolicies, RegistrationTokenService } from '../clients/registration-token.service.js';
import { createMintingProvider, createRegistrationPolicies, createRegistrationTokenService } from '../clients/registration-token.service.js';
import type { Config } from '../config/config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { createSecretBox } from '../crypto/secret-box.js';
import { guardDatabase } from '../db/unavailable.js';
import { createAttemptLimiter } from '../limits/attempt-limiter.js';
import type { SignInLimits } from '../limits/sign-in-limits.js';
import { createSignInLimits } from '../limits/sign-in-limits.js';
import type { InvitationService } from '../invitations/invitation.service.js';
import { createInvitationService } from '../invitations/invitation.service.js';
import type { Logger } from '../logging/logger.js';
import type { Mailer, MailTemplate } from '../mail/mailer.js';
import { createMailer } from '../mail/mailer.js';
import type { MailOutbox } from '../mail/outbox.service.js';
import { createMailOutbox, outboxSettingsFrom } from '../mail/outbox.service.js';
import { createAdapterStore } from '../oidc/mongo-adapter.js';
import type { BackchannelLogoutService, BackchannelSettings } from '../oidc/backchannel-logout.service.js';
import { createBackchannelLogoutService } from '../oidc/backchannel-logout.service.js';
import type { SigningKeyService } from '../oidc/key-rotation.service.js';
import { createSigningKeyService } from '../oidc/key-rotation.service.js';
import { signingKeyRetentionSeconds } from '../oidc/keys.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';

/** Something that keeps records: its indexes are made once at start, and expired records swept. */
export interface Store {
  name: string;
  /** The provider's own records (oidc_*): only a process that serves the provider needs their indexes. */
  provider?: boolean;
  ensureIndexes(): Promise<void>;
  /** Removes what expired (by the core's clock); returns how many records went. */
  sweep?(): Promise<number>;
}

export interface CoreOptions {
  config: Config;
  logger: Logger;
  connection: Connection;
  clock?: Clock;
  /**
   * The provider that mints registration tokens: the server passes its own (a getter, as the
   * provider is built on top of the core). Without it, one minting-only provider is built on the
   * first token created (the CLI).
   */
  mintingProvider?: () => Provider;
  /** Back-channel logout delivery settings (tests shorten them); default BACKCHANNEL_DEFAULTS. */
  backchannel?: Partial<BackchannelSettings>;
}

/** Every service, built once, for the server and the command line alike. */
export interface Core {
  config: Config;
  logger: Logger;
  connection: Connection;
  db: mongo.Db;
  clock: Clock;
  /** The one SecretBox (ENCRYPTION_KEYS): client secrets, TOTP secrets, signing keys. */
  secretBox: SecretBox;
  accounts: AccountService;
  clients: ClientService;
  /** The apps' own APIs our access tokens are for (RFC 8707); the provider reads them through a cache like clients. */
  resources: ApiResourceService;
  emailCodes: EmailCodeService;
  totp: TotpService;
  /** What administrators do to people (console, management API, CLI). */
  userAdmin: UserAdminService;
  /** An account's SSO sessions and connected apps, and taking them back (account centre, console). */
  access: AccountAccessService;
  /** NIST SP 800-63B rules for every new password (sign-up, reset, admin creation, change). */
  passwordPolicy: PasswordPolicy;
  /** Every limit on guessing and sending, per address, account and client IP (src/limits). */
  limits: SignInLimits;
  mailer: Mailer;
  /** Every mail, stored and delivered by a worker on every node (the server starts it). */
  outbox: MailOutbox;
  /**
   * OpenID Connect Back-Channel Logout: every session end stores logout notices for the session's
   * clients; the server's worker signs and delivers them (the CLI only stores them).
   */
  backchannelLogout: BackchannelLogoutService;
  /** Notice mails to an account's owner: password, address, second factors, new sign-in, deletion. */
  notices: AccountNotices;
  /** The browsers each account signed in from (NOTIFY_NEW_SIGN_IN), as keyed hashes. */
  knownBrowsers: KnownBrowserService;
  audit: AuditService;
  /** Invitations to sign up (SIGN_UP=invite). */
  invitations: InvitationService;
  /** Self-service sign-up with email verification (SIGN_UP). */
  signUp: SignUpService;
  /** Self-service password reset, and the reset mail administrators send (PASSWORD_RESET). */
  passwordReset: PasswordResetService;
  /** Initial access tokens for RFC 7591 dynamic registration. */
  registrationTokens: RegistrationTokenService;
  /** The provider's registration policies (features.registration.policies). */
  registrationPolicies: RegistrationPolicies;
  /** The signing keys: their states, rotation and retirement (the server follows them through its key ring). */
  signingKeys: SigningKeyService;
  /** Every store, in one list: start-up makes their indexes, the sweep loop sweeps them. */
  stores: readonly Store[];
  /** `withProvider: false` (the command line): all but the provider's stores. */
  ensureIndexes(options?: { withProvider?: boolean }): Promise<void>;
  /** One pass over every store; returns how many records went. */
  sweep(): Promise<number>;
  /** Sweeps every `intervalMs` in the background until close() (the server; the CLI does not). */
  startSweeping(intervalMs?: number): void;
  /** Stops the sweep and the client cache's watch, closes the mailer and waits for audit writes still in flight. Leaves the connection open. */
  close(): Promise<void>;
}

export function buildCore({ config, logger, connection, clock = systemClock, mintingProvider, backchannel }: CoreOptions): Core {
  const db = connection.db;
  if (!db) throw new Error('database connection is not open');
  const secretBox = createSecretBox(config.encryptionKeys);
  const Account = createAccountModel(connection);
  const audit = createAuditService({ db, logger, retentionDays: config.audit.retentionDays, clock });
  const accounts = createAccountService({ Account, logger, clock });
  const totp = createTotpService({ Account, db, secretBox, keys: config.encryptionKeys, issuer: config.productName, clock });
  const clients = createClientService({ Client: createClientModel(connection), secretBox, audit, config, db, clock, logger });
  const resources = createApiResourceService({ db, config, audit, clock, logger });
  const passwordPolicy = createPasswordPolicy(config);
  // Every way a session ends (the provider's logout, the account centre, admins, disabling and
  // deleting accounts, password resets) tells the client apps through this one outbox.
  const backchannelLogout = createBackchannelLogoutService({ db, clients, audit, logger, clock, ...(backchannel ? { settings: backchannel } : {}) });
  // NOTE: the provider's records live by the system's time (see the adapter below).
  const access = createAccountAccessService({ db, clients, loggedOut: backchannelLogout });
  const emailCodes = createEmailCodeService(
    db,
    {
      ttlSeconds: config.emailCode.ttlSeconds,
      resendIntervalSeconds: config.emailCode.resendIntervalSeconds,
      maxAttempts: config.emailCode.maxAttempts,
      purposes: { 'sign-up': { ttlSeconds: config.signUp.codeTtlSeconds }, 'password-reset': { ttlSeconds: config.passwordReset.ttlSeconds } },
    },
    clock,
  );
  const limiter = createAttemptLimiter(db, clock);
  const limits = createSignInLimits(limiter, config);
  // One deletion for the console, the API, the CLI and the account centre.
  const accountDeletion = createAccountDeletionService({ db, accounts, limits, audit, logger, loggedOut: backchannelLogout });
  const mailer = createMailer({ config, logger });
  const now = () => clock.nowMs();
  const outbox = createMailOutbox({ db, mailer, secretBox, audit, logger, settings: outboxSettingsFrom(config.mail.outbox), now });
  // Every mail goes through the outbox: sent at once when SMTP works, else retried by the worker.
  const outboxSender = {
    sendTemplate: async (to: string, template: MailTemplate, locals: Record<string, unknown>, options?: { expiresAt?: Date | undefined }) => {
      await outbox.enqueueTemplate(to, template, locals, { urgent: true, ...(options?.expiresAt ? { expiresAt: options.expiresAt } : {}) });
    },
  };
  const notices = createAccountNotices({ outbox, issuer: config.issuer, logger, clock });
  const knownBrowsers = createKnownBrowserService({ db, keys: config.encryptionKeys, clock });
  const userAdmin = createUserAdminService({
    accounts,
    totp,
    db,
    audit,
    logger,
    passwordPolicy,
    deletion: accountDeletion,
    notices,
    profileScopes: config.profileScopes,
    loggedOut: backchannelLogout,
  });
  const invitations = createInvitationService({ db, audit, logger, issuer: config.issuer, mailer: outboxSender, now });
  // Self-service sign-up and password reset, under the same password policy as everything else.
  const selfService = {
    config,
    accounts,
    db,
    emailCodes,
    limits,
    passwordPolicy,
    mail: createBackgroundMail(outboxSender, logger),
    links: selfServiceLinks(config.issuer),
    audit,
    logger,
    notices,
    now,
    loggedOut: backchannelLogout,
  };
  // SIGN_UP=invite: a sign-up spends one use of its invitation (a unique-insert claim).
  const invitationCheck = { accept: async (token: string, email: string) => (await invitations.redeem(token, email)).ok };
  const signUp = createSignUpService({ ...selfService, invitations: invitationCheck, Account });
  const passwordReset = createPasswordResetService(selfService);

  let ownMinter: Provider | undefined;
  const minter =
    mintingProvider ??
    (() => (ownMinter ??= createMintingProvider({ issuer: config.issuer, db, clientStore: clients, logger })));
  const registrationTokens = createRegistrationTokenService({ provider: minter, db, audit, clock });
  const registrationPolicies = createRegistrationPolicies({ db, audit, clock });
  // NOTE: not the core's clock: the provider's records live and expire by the provider's own
  // time (the system's), which no clock of ours moves.
  const adapter = createAdapterStore({ db, logger });
  const signingKeys = createSigningKeyService({
    db,
    secretBox,
    logger,
    clock,
    audit,
    prepublishSeconds: config.signingKeys.prepublishSeconds,
    retentionSeconds: signingKeyRetentionSeconds(config.ttl),
  });

  // NOTE: used recovery codes have no expiry a TTL index could act on (totp.service.ts), so the
  // sweep runs on MongoDB too; the other stores' sweeps are cheap indexed deletes.
  const stores: Store[] = [
    { name: 'accounts', ensureIndexes: () => accounts.ensureIndexes() },
    { name: 'clients', ensureIndexes: () => clients.ensureIndexes(), sweep: () => clients.sweep() },
    { name: 'api resources', ensureIndexes: () => resources.ensureIndexes() },
    { name: 'oidc', provider: true, ensureIndexes: () => adapter.ensureIndexes(), sweep: () => adapter.sweep() },
    { name: 'email codes', ensureIndexes: () => emailCodes.ensureIndexes(), sweep: () => emailCodes.sweep() },
    { name: 'limits', ensureIndexes: () => limiter.ensureIndexes(), sweep: () => limiter.sweep() },
    { name: 'totp', ensureIndexes: () => totp.ensureIndexes(), sweep: () => totp.sweep() },
    { name: 'audit', ensureIndexes: () => audit.ensureIndexes(), sweep: () => audit.sweep() },
    { name: 'registration tokens', ensureIndexes: () => registrationTokens.ensureIndexes(), sweep: () => registrationTokens.sweep() },
    { name: 'mail outbox', ensureIndexes: () => outbox.ensureIndexes(), sweep: () => outbox.sweep() },
    { name: 'back-channel logout', ensureIndexes: () => backchannelLogout.ensureIndexes(), sweep: () => backchannelLogout.sweep() },
    { name: 'invitations', ensureIndexes: () => invitations.ensureIndexes(), sweep: () => invitations.sweep() },
    { name: 'sign-up', ensureIndexes: () => signUp.ensureIndexes(), sweep: () => signUp.sweep() },
    { name: 'password reset', ensureIndexes: () => passwordReset.ensureIndexes(), sweep: () => passwordReset.sweep() },
    { name: 'known browsers', ensureIndexes: () => knownBrowsers.ensureIndexes(), sweep: () => knownBrowsers.sweep() },
    { name: 'signing keys', ensureIndexes: () => signingKeys.ensureIndexes() },
  ];

  async function sweep(): Promise<number> {
    let removed = 0;
    for (const store of stores) if (store.sweep) removed += await store.sweep();
    return removed;
  }

  let timer: NodeJS.Timeout | undefined;
  let closed: Promise<void> | undefined;

  return {
    config,
    logger,
    connection,
    db,
    clock,
    secretBox,
    accounts,
    clients,
    resources,
    emailCodes,
    totp,
    userAdmin,
    access,
    passwordPolicy,
    limits,
    mailer,
    outbox,
    backchannelLogout,
    notices,
    knownBrowsers,
    audit,
    invitations,
    signUp,
    passwordReset,
    registrationTokens,
    registrationPolicies,
    signingKeys,
    stores,
    async ensureIndexes({ withProvider = true } = {}) {
      for (const store of stores) if (withProvider || !store.provider) await store.ensureIndexes();
    },
    sweep,
    startSweeping(intervalMs = 60_000) {
      if (timer || closed) return;
      timer = setInterval(() => {
        guardDatabase(sweep).then(
          (n) => n > 0 && logger.debug('swept expired records', { removed: n }),
          (err: unknown) => logger.warn('expiry sweep failed', { reason: (err as Error).message }),
        );
      }, intervalMs);
      timer.unref();
    },
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        timer = undefined;
        clients.stopWatching();
        resources.stopWatching();
        // The sends in flight finish first; a mail cut off is retried after its lease.
        await outbox.stop();
        await backchannelLogout.stop();
        mailer.close();
        // Audit writes started by provider events are not awaited by requests: let them land.
        await audit.flush().catch(() => undefined);
      })();
      return closed;
    },
  };
}
