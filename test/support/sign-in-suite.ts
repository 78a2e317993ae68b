/**
 * The setup the sign-in suites share: a test server that sends its mail to an SMTP test server
 * (so that codes are read from the mail a person would get), and two relying parties to compare,
 * one a password satisfies and one that requires a second factor.
 */
import type * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import type { Env } from '../../src/config/config.js';
import { startMailServer } from './mail-server.js';
import type { MailServer } from './mail-server.js';
import { REDIRECT_URI, rpFor } from './rp.js';
import { startTestServer } from './test-server.js';
import type { TestServer, TestServerOptions } from './test-server.js';

export interface MailingServer {
  server: TestServer;
  smtp: MailServer;
}

/** A fresh SMTP test server, and a test server (named after `label`) mailing to it; `env` adds settings. */
export async function startMailingServer(label: string, env: Env = {}, options: Omit<TestServerOptions, 'env'> = {}): Promise<MailingServer> {
  const smtp = await startMailServer();
  const server = await startTestServer(label, { ...options, env: { SMTP_URL: smtp.url, MAIL_FROM: 'Id <id@example.com>', ...env } });
  return { server, smtp };
}

/**
 * The end of a suite: the server's log printed when DEBUG_LOGS is set, then the server and the
 * SMTP server closed (either may be missing when the suite's setup failed).
 */
export async function stopMailingServer({ server, smtp }: Partial<MailingServer>): Promise<void> {
  if (process.env.DEBUG_LOGS && server) console.log(server.logs.join('\n'));
  await server?.close();
  await smtp?.close();
}

export interface PlainAndMfaClients {
  /** "Notes": a password is enough (unless the account has a second factor). */
  client: CreatedClient;
  /** "Bank": require_mfa, every sign-in needs a second factor. */
  mfaClient: CreatedClient;
  rp: oidc.Configuration;
  mfaRp: oidc.Configuration;
}

/** Registers both clients with REDIRECT_URI; `connect` makes each one's relying party (default rpFor). */
export async function createPlainAndMfaClients(
  server: TestServer,
  connect: (client: CreatedClient) => Promise<oidc.Configuration> = (client) => rpFor(server, client),
): Promise<PlainAndMfaClients> {
  const client = await server.deps.clients.create({ name: 'Notes', redirectUris: [REDIRECT_URI] });
  const mfaClient = await server.deps.clients.create({ name: 'Bank', redirectUris: [REDIRECT_URI], requireMfa: true });
  return { client, mfaClient, rp: await connect(client), mfaRp: await connect(mfaClient) };
}
