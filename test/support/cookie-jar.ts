/**
 * The cookie jar of a browser stand-in (tests' UserAgent, the bench's BrowserAgent): keeps what
 * `Set-Cookie` says, honours cookie paths, forgets expired and emptied cookies. Domain and Secure
 * attributes are not looked at: every request goes to the one server under test.
 */
interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

export class CookieJar {
  private cookies: StoredCookie[] = [];

  /** The `Cookie` header for a request to `url` ('' when no cookie applies). */
  header(url: URL): string {
    return this.cookies
      .filter((c) => c.path === '/' || url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** Takes in the `Set-Cookie` lines of a reply to a request for `url`. */
  store(url: URL, headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const pathAttr = attrs.find((a) => a.toLowerCase().startsWith('path='));
      const path = pathAttr ? pathAttr.slice(5) : url.pathname.replace(/\/[^/]*$/, '') || '/';
      const expired = value === '' || attrs.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)).getTime() < Date.now());
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.path === path));
      if (!expired) this.cookies.push({ name, value, path });
    }
  }

  names(): string[] {
    return this.cookies.map((c) => c.name);
  }
}
