/**
 * What the server refuses, and exactly how: the OAuth error codes of RFC 6749, RFC 7636 and
 * OpenID Connect Core, delivered to the client's redirect_uri when it is trustworthy and as an
 * error page when it is not.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as oidc from 'openid-client';

import type { CreatedClient } from '../../src/clients/client.service.js';
import {
  REDIRECT_URI,
  authorizationRequest,
  callbackParams,
  rawAuthorizationUrl,
  redeem,
  rpFor,
  signInForTokens,
  userinfoStatus,
} from '../support/rp.js';
import type { Tokens } from '../support/rp.js';
import { useMovableSystemDate } from '../support/clock.js';
import type { MovableSystemDate } from '../support/clock.js';
import { startTestServer } from '../support/test-server.js';
import type { TestServer } from '../support/test-server.js';
import type { Reply } from '../support/user-agent.js';
import { UserAgent, formAction, formField, signInThroughPages } from '../support/user-agent.js';

const USER = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };
const OTHER = { email: 'grace@example.com', password: 'another long passphrase', name: 'Grace Hopper' };

function expectNoLoginPage(reply: Reply): void {
  expect(reply.location ?? '').not.toContain('/interaction/');
  expect(reply.body).not.toContain('name="password"');
}

/** An error page from us: 400, HTML, no redirect anywhere, the OAuth error code shown. */
function expectErrorPage(reply: Reply, error: string): void {
  expect(reply.status).toBe(400);
  expect(reply.location).toBeUndefined();
  expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
  expect(reply.body).toContain(`<code>${error}</code>`);
  expectNoLoginPage(reply);
}

describe('refused requests', () => {
  let server: TestServer;
  let confidential: CreatedClient;
  let publicClient: CreatedClient;
  let confidentialRp: oidc.Configuration;
  let publicRp: oidc.Configuration;

  beforeAll(async () => {
    server = await startTestServer('refused');
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    confidential = await server.deps.clients.create({ name: 'Confidential RP', redirectUris: [REDIRECT_URI] });
    publicClient = await server.deps.clients.create({ name: 'Public RP', redirectUris: [REDIRECT_URI], public: true });
    confidentialRp = await rpFor(server, confidential);
    publicRp = await rpFor(server, publicClient);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
  });

  describe('PKCE at the authorization endpoint (RFC 7636, RFC 9700 §2.1.1)', () => {
    it.each([
      ['public', () => publicRp],
      ['confidential', () => confidentialRp],
    ])('refuses a %s client without code_challenge: invalid_request at the redirect_uri, no login page', async (_kind, rp) => {
      const state = oidc.randomState();
      const agent = new UserAgent(server.url);
      const reply = await agent.follow(
        rawAuthorizationUrl(rp(), {
          client_id: rp().clientMetadata().client_id,
          response_type: 'code',
          scope: 'openid',
          redirect_uri: REDIRECT_URI,
          state,
        }),
      );
      expect(reply.status).toBe(303);
      expectNoLoginPage(reply);
      const params = callbackParams(reply);
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/PKCE/);
      expect(params.get('state')).toBe(state);
      expect(params.get('code')).toBeNull();
      expect(params.get('iss')).toBe(server.url);
    });

    it('refuses code_challenge_method=plain: invalid_request at the redirect_uri', async () => {
      const verifier = oidc.randomPKCECodeVerifier();
      const started = await authorizationRequest(publicRp, { code_challenge: verifier, code_challenge_method: 'plain' });
      const reply = await new UserAgent(server.url).follow(started.url.toString());
      expect(reply.status).toBe(303);
      expectNoLoginPage(reply);
      const params = callbackParams(reply);
      expect(params.get('error')).toBe('invalid_request');
      expect(params.get('error_description')).toMatch(/code_challenge_method/);
      expect(params.get('state')).toBe(started.state);
      expect(params.get('code')).toBeNull();
    });
  });

  describe('the token endpoint', () => {
    it('refuses a wrong code_verifier with invalid_grant (RFC 7636 §4.6)', async () => {
      const started = await authorizationRequest(confidentialRp);
      const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
      expect(callbackParams(callback).get('code')).toBeTruthy();
      await expect(
        redeem(confidentialRp, { ...started, verifier: oidc.randomPKCECodeVerifier() }, callback),
      ).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
    });

    it('refuses a second redemption of a code with invalid_grant and revokes what the first one issued (RFC 6749 §4.1.2)', async () => {
      const { started, callback, tokens } = await signInForTokens(confidentialRp, new UserAgent(server.url), USER, {
        scope: 'openid offline_access',
        prompt: 'consent',
      });
      expect(tokens.refresh_token).toBeTruthy();
      expect((await userinfoStatus(confidentialRp, tokens.access_token)).status).toBe(200);

      await expect(redeem(confidentialRp, started, callback)).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });

      const userinfo = await userinfoStatus(confidentialRp, tokens.access_token);
      expect(userinfo.status).toBe(401);
      expect(userinfo.wwwAuthenticate).toMatch(/error="invalid_token"/);
      await expect(oidc.refreshTokenGrant(confidentialRp, tokens.refresh_token!)).rejects.toMatchObject({
        error: 'invalid_grant',
        status: 400,
      });
    });

    it('lets at most one of many concurrent redemptions of one code succeed; the rest get invalid_grant, none a 500', async () => {
      const started = await authorizationRequest(confidentialRp, { scope: 'openid offline_access', prompt: 'consent' });
      const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
      const code = callbackParams(callback).get('code')!;
      const tokenEndpoint = confidentialRp.serverMetadata().token_endpoint!;
      const basic = Buffer.from(
        `${encodeURIComponent(confidential.clientId)}:${encodeURIComponent(confidential.clientSecret!)}`,
      ).toString('base64');
      const body = new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: started.verifier,
      }).toString();

      const replies = await Promise.all(
        Array.from({ length: 12 }, async () => {
          const res = await fetch(tokenEndpoint, {
            method: 'POST',
            headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
            body,
          });
          return { status: res.status, json: (await res.json()) as Record<string, unknown> };
        }),
      );

      const statuses = replies.map((r) => r.status).sort();
      if (process.env.DEBUG_LOGS) console.log(replies.map((r) => [r.status, r.json.error, r.json.error_description]));
      const winners = replies.filter((r) => r.status === 200);
      const losers = replies.filter((r) => r.status !== 200);
      expect(statuses.every((s) => s === 200 || s === 400)).toBe(true);
      expect(winners.length).toBeLessThanOrEqual(1);
      for (const loser of losers) expect(loser.json.error).toBe('invalid_grant');

      // The replay revokes the grant, so even the winner's tokens end up refused (RFC 6749 §4.1.2 SHOULD).
      const winner = winners[0];
      if (winner) {
        expect((await userinfoStatus(confidentialRp, String(winner.json.access_token))).status).toBe(401);
        await expect(oidc.refreshTokenGrant(confidentialRp, String(winner.json.refresh_token))).rejects.toMatchObject({
          error: 'invalid_grant',
        });
      }
      expect(server.logs.filter((line) => line.includes('"level":"error"'))).toEqual([]);
    });
  });

  describe('the authorization endpoint without a trustworthy redirect_uri (RFC 6749 §4.1.2.1)', () => {
    it('never redirects to an unregistered redirect_uri: error page, 400', async () => {
      const started = await authorizationRequest(confidentialRp, { redirect_uri: 'http://127.0.0.1:9/elsewhere' });
      const reply = await new UserAgent(server.url).follow(started.url.toString());
      expectErrorPage(reply, 'invalid_redirect_uri');
    });

    it('answers an unknown client_id with an error page, 400, no redirect', async () => {
      const reply = await new UserAgent(server.url).follow(
        rawAuthorizationUrl(publicRp, {
          client_id: 'no-such-client-0123456789',
          response_type: 'code',
          scope: 'openid',
          redirect_uri: REDIRECT_URI,
          code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
          code_challenge_method: 'S256',
          state: oidc.randomState(),
        }),
      );
      expectErrorPage(reply, 'invalid_client');
    });
  });

  describe('the login page', () => {
    /** Starts a sign-in in a new browser and posts these credentials; returns the page shown. */
    async function attemptSignIn(email: string, password: string): Promise<{ reply: Reply; uid: string; csrf: string }> {
      const started = await authorizationRequest(confidentialRp);
      const agent = new UserAgent(server.url);
      const page = await agent.follow(started.url.toString());
      expect(page.status).toBe(200);
      const action = formAction(page.body, '/login');
      const uid = /\/interaction\/([^/]+)\/login$/.exec(action)?.[1] ?? '';
      // Followed to the page it redirects to (post/redirect/get); the redirects are compared too.
      const reply = await agent.submit(action, { csrf: formField(page.body, 'csrf'), email, password });
      expect(reply.posted.status).toBe(303);
      return { reply, uid, csrf: formField(reply.body, 'csrf') };
    }

    /** The page without what differs per attempt by design: the interaction, its CSRF token, the typed email. */
    function normalise(attempt: { reply: Reply; uid: string; csrf: string }, email: string): string {
      const location = (attempt.reply as Reply & { posted?: Reply }).posted?.location ?? '';
      return `${location}\n${attempt.reply.body}`.split(attempt.csrf).join('CSRF').split(attempt.uid).join('UID').split(email).join('EMAIL');
    }

    function expectRefusedLogin(reply: Reply): void {
      expect(reply.status).toBe(401);
      expect(reply.location).toBeUndefined();
      expect(reply.body).toContain('Incorrect email or password.');
      expect(reply.body).toContain('name="password"');
    }

    it('answers a wrong password and an unknown email with the identical page: 401, "Incorrect email or password."', async () => {
      const wrongPassword = await attemptSignIn(USER.email, 'not the right password');
      const unknownEmail = await attemptSignIn('nobody@example.com', USER.password);
      expectRefusedLogin(wrongPassword.reply);
      expectRefusedLogin(unknownEmail.reply);
      expect(normalise(unknownEmail, 'nobody@example.com')).toBe(normalise(wrongPassword, USER.email));
    });

    it('answers a disabled account like a wrong password, and stops its existing tokens', async () => {
      const account = await server.deps.accounts.create({ ...OTHER, emailVerified: true });
      const { tokens } = await signInForTokens(confidentialRp, new UserAgent(server.url), OTHER, {
        scope: 'openid offline_access',
        prompt: 'consent',
      });
      expect(tokens.refresh_token).toBeTruthy();

      await server.deps.accounts.setDisabled(account.id, true);

      const disabled = await attemptSignIn(OTHER.email, OTHER.password);
      const wrongPassword = await attemptSignIn(USER.email, 'not the right password');
      expectRefusedLogin(disabled.reply);
      expect(normalise(disabled, OTHER.email)).toBe(normalise(wrongPassword, USER.email));

      // findAccount returns nothing for a disabled account: refresh and userinfo both stop.
      await expect(oidc.refreshTokenGrant(confidentialRp, tokens.refresh_token!)).rejects.toMatchObject({
        error: 'invalid_grant',
        status: 400,
      });
      expect((await userinfoStatus(confidentialRp, tokens.access_token)).status).toBe(401);
    });
  });

  describe('answers sent back to the client', () => {
    it('sends access_denied with the original state when the person denies consent', async () => {
      const started = await authorizationRequest(confidentialRp);
      const reply = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER, { consent: 'deny' });
      expect(reply.status).toBe(303);
      const params = callbackParams(reply);
      expect(params.get('error')).toBe('access_denied');
      expect(params.get('state')).toBe(started.state);
      expect(params.get('code')).toBeNull();
    });

    it('sends login_required for prompt=none without a session (OIDC Core §3.1.2.6)', async () => {
      const started = await authorizationRequest(confidentialRp, { prompt: 'none' });
      const reply = await new UserAgent(server.url).follow(started.url.toString());
      expect(reply.status).toBe(303);
      expectNoLoginPage(reply);
      const params = callbackParams(reply);
      expect(params.get('error')).toBe('login_required');
      expect(params.get('state')).toBe(started.state);
      expect(params.get('code')).toBeNull();
    });
  });
});

describe('refresh token lifetimes (idle 4 s, absolute 7 s)', () => {
  // NOTE: token times are whole seconds (exp = floor(now) + ttl), so a token lives between
  // ttl - 1 and ttl seconds. An idle period of 4 s leaves a token used every 1.5 s at least 1.5 s
  // to spare for a stalled request (a loaded machine); 3 s left only 0.5 s.
  const IDLE_MS = 4000;
  const ABSOLUTE_MS = 7000;
  let server: TestServer;
  let rp: oidc.Configuration;
  /** The provider's time (token lifetimes): moved forward instead of slept through. */
  let date: MovableSystemDate;

  beforeAll(async () => {
    date = useMovableSystemDate();
    server = await startTestServer('refused-ttl', {
      env: { REFRESH_TOKEN_IDLE_TTL: String(IDLE_MS / 1000), REFRESH_TOKEN_ABSOLUTE_TTL: String(ABSOLUTE_MS / 1000) },
    });
    await server.deps.accounts.create({ ...USER, emailVerified: true });
    const client = await server.deps.clients.create({ name: 'Public RP', redirectUris: [REDIRECT_URI], public: true });
    rp = await rpFor(server, client);
  });

  afterAll(async () => {
    if (process.env.DEBUG_LOGS) console.log(server.logs.join('\n'));
    await server.close();
    date.restore();
  });

  interface Rotation {
    /** When the request was sent, in ms after the first refresh token was asked for. */
    sentAt: number;
    /** At most this old (ms) was the token presented: measured from when the request that issued it was sent. */
    tokenAge: number;
    outcome: string;
  }

  interface Chain {
    /** ms from asking for the first refresh token until it arrived (it was issued somewhere in between). */
    firstIssuedWithin: number;
    rotations: Rotation[];
  }

  /**
   * Signs in, then rotates the refresh token every `everyMs` until it is refused, or until a
   * request sent after the cap (at the latest ABSOLUTE_MS after the first refresh token arrived)
   * was not: the assertions then say so.
   */
  async function rotateUntilRefused(everyMs: number): Promise<Chain> {
    const started = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
    const callback = await signInThroughPages(new UserAgent(server.url), started.url.toString(), USER);
    const chainStart = Date.now();
    let current: Tokens = await redeem(rp, started, callback);
    const firstIssuedWithin = Date.now() - chainStart;
    let previousSentAt = 0;
    const rotations: Rotation[] = [];
    while (previousSentAt < ABSOLUTE_MS + firstIssuedWithin) {
      // NOTE: scheduled from the previous request, not on a fixed grid, so one slow request
      // (a loaded machine) does not age every later token.
      date.advance(Math.max(0, chainStart + previousSentAt + everyMs - Date.now()));
      const sentAt = Date.now() - chainStart;
      const tokenAge = sentAt - previousSentAt;
      previousSentAt = sentAt;
      try {
        current = await oidc.refreshTokenGrant(rp, current.refresh_token!);
        expect(current.refresh_token).toBeTruthy();
        rotations.push({ sentAt, tokenAge, outcome: 'rotated' });
      } catch (err) {
        rotations.push({ sentAt, tokenAge, outcome: (err as { error?: string }).error ?? String(err) });
        break;
      }
    }
    return { firstIssuedWithin, rotations };
  }

  it('ends a rotated chain at the absolute cap, although every token was used well within its idle period', async () => {
    // Two chains: every 1.5 s, and faster than once a second (the TTL never drops below 1 s,
    // which must not let a busy chain outlive the cap). One after the other: each moves the date
    // for its own schedule, which the other's moves would upset.
    const chains = [await rotateUntilRefused(1500), await rotateUntilRefused(500)];

    for (const chain of chains) {
      const { firstIssuedWithin, rotations } = chain;
      const refused = rotations.at(-1)!;
      const rotated = rotations.filter((r) => r.outcome === 'rotated');
      // On failure the timings say why (a loaded machine can stall a request).
      const timings = JSON.stringify(chain);
      expect({ outcome: refused.outcome, timings }).toEqual({ outcome: 'invalid_grant', timings });
      // The chain outlived the idle period: rotation kept it alive past 4 s...
      expect({ rotatedAfterIdle: rotated.some((r) => r.sentAt >= IDLE_MS), timings }).toEqual({ rotatedAfterIdle: true, timings });
      // ...but nothing was rotated after the cap: 7 s after the first refresh token was issued.
      const cap = ABSOLUTE_MS + firstIssuedWithin;
      expect({ rotatedAfterCap: rotated.filter((r) => r.sentAt >= cap), timings }).toEqual({ rotatedAfterCap: [], timings });
      // And the refused token was young: token times are whole seconds, so an idle expiry of
      // 4 s can strike a token after 3 s at the earliest, never sooner. The cap refused it.
      expect({ refusedYoung: refused.tokenAge < IDLE_MS - 1000, timings }).toEqual({ refusedYoung: true, timings });
    }
  });

  it('refuses a refresh token left unused for longer than the idle period', async () => {
    const { tokens } = await signInForTokens(rp, new UserAgent(server.url), USER, { scope: 'openid offline_access', prompt: 'consent' });
    date.advance(IDLE_MS + 500);
    await expect(oidc.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });
  });
});
