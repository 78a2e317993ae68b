import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * HTTP requests through node:http, for what fetch will not send: a Host header of our choosing
 * (fetch always sends the URL's), an absolute-form request target, Sec-Fetch-Site.
 */

export interface RawReply {
  status: number;
  headers: IncomingHttpHeaders;
  setCookies: string[];
  location: string | undefined;
  body: string;
}

export interface RawRequest {
  method?: string;
  /** The request target as sent: a path, or an absolute URL (absolute-form). */
  target: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export function rawHttp(port: number, { method = 'GET', target, headers = {}, body }: RawRequest): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      const finish = () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          setCookies: res.headers['set-cookie'] ?? [],
          location: res.headers.location,
          body: Buffer.concat(chunks).toString('utf8'),
        });
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', finish);
      // A server that answers a too-large body at once may close before reading it all.
      res.on('close', finish);
      res.on('error', () => undefined);
    });
    // NOTE: writing a large body to a server that has already answered (413) and closed fails
    // with EPIPE or ECONNRESET; the answer is what counts then.
    req.on('error', (err) => {
      if (!responded) reject(err);
    });
    req.end(body);
  });
}

/**
 * A browser stand-in over node:http that adds `headers` to every request (a foreign Host, proxy
 * headers) and keeps cookies by name. NOTE: cookie paths are ignored; our cookies have distinct
 * names, so sending all of them everywhere changes nothing for these tests.
 */
/** Keeps Set-Cookie lines in a jar by name (our cookies have distinct names); a cleared cookie leaves it. */
export function storeCookies(jar: Map<string, string>, setCookies: readonly string[]): void {
  for (const line of setCookies) {
    const pair = line.split(';')[0] ?? '';
    const eq = pair.indexOf('=');
    const value = pair.slice(eq + 1);
    if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(pair.slice(0, eq));
    else jar.set(pair.slice(0, eq), value);
  }
}

export class RawBrowser {
  private readonly cookies = new Map<string, string>();

  constructor(
    private readonly port: number,
    private readonly headers: Record<string, string> = {},
  ) {}

  async request(method: string, target: string, options: { form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<RawReply> {
    const headers: Record<string, string> = { accept: 'text/html', ...this.headers, ...options.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    let body: string | undefined;
    if (options.form) {
      body = new URLSearchParams(options.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const reply = await rawHttp(this.port, { method, target, headers, ...(body === undefined ? {} : { body }) });
    storeCookies(this.cookies, reply.setCookies);
    return reply;
  }
}

/**
 * A port free at the moment, for a test server whose ISSUER must name its port before it starts
 * (an https issuer served on the plain listener, as behind a TLS-terminating proxy).
 */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
