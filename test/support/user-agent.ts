/**
 * A minimal browser stand-in for HTTP-level tests: a cookie jar that honours cookie paths,
 * and requests that do not follow redirects (tests follow them one by one and look at each).
 */
import { CookieJar } from './cookie-jar.js';

export interface Reply {
  status: number;
  location: string | undefined;
  body: string;
  headers: Headers;
  url: string;
}

export class UserAgent {
  private readonly cookieJar = new CookieJar();

  constructor(readonly baseUrl: string) {}

  private absolute(url: string): URL {
    return new URL(url, this.baseUrl);
  }

  cookieNames(): string[] {
    return this.cookieJar.names();
  }

  /** The `Cookie` header this browser would send to `url` (for a request a test builds itself). */
  cookieHeader(url: string | URL): string {
    return this.cookieJar.header(this.absolute(String(url)));
  }

  async request(url: string, init: RequestInit = {}): Promise<Reply> {
    const target = this.absolute(url);
    const headers = new Headers(init.headers);
    const cookie = this.cookieJar.header(target);
    if (cookie) headers.set('cookie', cookie);
    if (!headers.has('accept')) headers.set('accept', 'text/html');
    const res = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.cookieJar.store(target, res.headers);
    const location = res.headers.get('location') ?? undefined;
    return {
      status: res.status,
      location: location ? new URL(location, target).toString() : undefined,
      body: await res.text(),
      headers: res.headers,
      url: target.toString(),
    };
  }

  get(url: string): Promise<Reply> {
    return this.request(url);
  }

  post(url: string, form: Record<string, string>): Promise<Reply> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  /**
   * Posts a sign-in form and, as a browser does, follows its 303 (post/redirect/get) to the page
   * it names on this server: the reply is that GET's, with the POST's on `posted`. A redirect
   * leaving the server (or any non-303 answer) comes back as it is.
   */
  async submit(url: string, form: Record<string, string>): Promise<Reply & { posted: Reply }> {
    const posted = await this.post(url, form);
    if (posted.status !== 303 || !posted.location?.startsWith(`${new URL(this.baseUrl).origin}/interaction/`)) return { ...posted, posted };
    return { ...(await this.get(posted.location)), posted };
  }

  /** Follows redirects within our server; stops at a page (2xx/4xx/5xx) or at a redirect leaving it. */
  async follow(url: string): Promise<Reply> {
    let reply = await this.get(url);
    for (let hops = 0; hops < 10 && reply.status >= 300 && reply.status < 400 && reply.location; hops += 1) {
      if (!reply.location.startsWith(this.baseUrl)) return reply;
      reply = await this.get(reply.location);
    }
    return reply;
  }
}

export function formField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match?.[1]) throw new Error(`no field ${name} in page`);
  return match[1].replace(/&amp;/g, '&');
}

export function formAction(html: string, pathEnd: string): string {
  const match = new RegExp(`action="([^"]*${pathEnd})"`).exec(html);
  if (!match?.[1]) throw new Error(`no form posting to *${pathEnd}`);
  return match[1];
}

/** Steps through login and consent pages as a person would; returns the reply that leaves the server. */
export async function signInThroughPages(
  agent: UserAgent,
  authorizationUrl: string,
  credentials: { email: string; password: string },
  options: { consent?: 'allow' | 'deny'; /** Collects every page shown on the way. */ seen?: Reply[] } = {},
): Promise<Reply> {
  let reply = await agent.follow(authorizationUrl);
  for (let steps = 0; steps < 5; steps += 1) {
    if (reply.status !== 200) return reply;
    options.seen?.push(reply);
    if (reply.body.includes('/login"')) {
      reply = await agent.post(formAction(reply.body, '/login'), {
        csrf: formField(reply.body, 'csrf'),
        email: credentials.email,
        password: credentials.password,
      });
    } else if (reply.body.includes('/confirm"')) {
      const target = options.consent === 'deny' ? formAction(reply.body, '/abort') : formAction(reply.body, '/confirm');
      reply = await agent.post(target, { csrf: formField(reply.body, 'csrf') });
    } else {
      return reply;
    }
    if (reply.status === 303 && reply.location) reply = await agent.follow(reply.location);
  }
  return reply;
}
