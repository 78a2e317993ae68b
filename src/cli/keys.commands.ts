import type { SigningAlgorithm, SigningKeyView } from '../oidc/keys.js';
import { SIGNING_ALGORITHMS } from '../oidc/keys.js';
import type { CliCommand } from './command.js';
import { CLI_ACTOR, EXIT_OK, UsageError, listCommand, parseCommandArgs, singlePositional, toCommandFunction, writeJson } from './command.js';

const listUsage = `Usage: npm run cli -- keys list [--json]

Lists the signing keys with their state:
  pending         published in the JWKS, signs from ACTIVATED on
  active          signs new ID tokens (one per algorithm: the newest activated)
  published-only  superseded; stays in the JWKS until RETIRE_AFTER so that the tokens it
                  signed still verify, then leaves it on its own
  retired         no longer published (retired by hand, or past RETIRE_AFTER)

Options:
  --json       print a JSON array instead of text
  -h, --help   show this help
`;

const rotateUsage = `Usage: npm run cli -- keys rotate [--alg RS256|ES256|all] [--json]

Adds a new signing key per algorithm. It is published in the JWKS at once and starts signing
after KEY_PREPUBLISH_SECONDS (default: an hour), so relying parties that cache the JWKS
know it before they see a token signed with it. The key it replaces keeps verifying until
every token it signed has expired. Every running node follows within seconds; nothing needs
a restart. Refused while a new key of that algorithm is still pending.

Options:
  --alg ALG    RS256, ES256 or all; default: all
  --json       print a JSON array of the new keys instead of text
  -h, --help   show this help
`;

const retireUsage = `Usage: npm run cli -- keys retire KID [--force]

Retires a signing key (KID as \`keys list\` shows it): it leaves the JWKS on every node within
seconds and its private key is deleted. Refused for the active key of an algorithm (rotate
first). Refused, unless --force, for a key that tokens still live may need (until its
RETIRE_AFTER) and for a pending key about to activate. A pending key retired early cancels
its rotation. Exits with code 1 when refused or when there is no such key.

Options:
  --force      retire a key that is still needed (tokens it signed stop verifying)
  -h, --help   show this help
`;

/** A key as printed by `--json`. */
export interface SigningKeyJson {
  kid: string;
  alg: SigningAlgorithm;
  state: SigningKeyView['state'];
  created_at: string;
  published_at: string;
  activated_at: string;
  superseded_at: string | null;
  retire_after: string | null;
  retired_at: string | null;
}

function toJson(view: SigningKeyView): SigningKeyJson {
  return {
    kid: view.kid,
    alg: view.alg,
    state: view.state,
    created_at: view.createdAt.toISOString(),
    published_at: view.publishAt.toISOString(),
    activated_at: view.activatedAt.toISOString(),
    superseded_at: view.supersededAt?.toISOString() ?? null,
    retire_after: view.retireAfter?.toISOString() ?? null,
    retired_at: view.retiredAt?.toISOString() ?? null,
  };
}

const dash = (date: Date | null) => date?.toISOString() ?? '-';

export const keysListCommand = listCommand<SigningKeyView>({
  name: 'keys list',
  summary: 'list the signing keys and their states (pending, active, published-only, retired)',
  usage: listUsage,
  load: (services) => services.signingKeys.list(),
  toJson,
  empty: 'No signing keys yet: the server creates them when it first starts.',
  columns: ['KID', 'ALG', 'STATE', 'PUBLISHED', 'ACTIVATED', 'RETIRE_AFTER', 'RETIRED'],
  row: (v) => [v.kid, v.alg, v.state, v.publishAt.toISOString(), v.activatedAt.toISOString(), dash(v.retireAfter), dash(v.retiredAt)],
});

function parseAlg(value: string | undefined): SigningAlgorithm[] {
  if (value === undefined || value === 'all') return [...SIGNING_ALGORITHMS];
  const alg = SIGNING_ALGORITHMS.find((a) => a === value.toUpperCase());
  if (!alg) throw new UsageError(`--alg must be one of ${SIGNING_ALGORITHMS.join(', ')} or all`);
  return [alg];
}

export const keysRotateCommand: CliCommand = {
  name: 'keys rotate',
  summary: 'add a new signing key (published now, signing after KEY_PREPUBLISH_SECONDS)',
  usage: rotateUsage,
  prepare(args) {
    const { values } = parseCommandArgs(args, { alg: { type: 'string' }, json: { type: 'boolean' } });
    if (values.help) return 'help';
    const algs = parseAlg(values.alg);
    const json = values.json ?? false;

    return async ({ services, out }) => {
      const before = await services.signingKeys.list();
      const created = await services.signingKeys.rotate(algs, CLI_ACTOR);
      if (json) {
        writeJson(out, created.map(toJson));
        return EXIT_OK;
      }
      const after = await services.signingKeys.list();
      const lines: string[] = [];
      for (const key of created) {
        lines.push(`Rotated in ${key.alg} key ${key.kid}.`, `  published:  now (${key.publishAt.toISOString()})`, `  signs from: ${key.activatedAt.toISOString()}`);
        const replaced = before.find((v) => v.alg === key.alg && v.state === 'active');
        const retireAfter = after.find((v) => v.kid === replaced?.kid)?.retireAfter;
        if (replaced && retireAfter) lines.push(`  replaces:   ${replaced.kid}, published until ${retireAfter.toISOString()}`);
      }
      lines.push('', 'Every node switches on its own at those times; no restart is needed.', '');
      out.write(lines.join('\n'));
      return EXIT_OK;
    };
  },
};

export const keysRetireCommand: CliCommand = {
  name: 'keys retire',
  summary: 'retire a signing key (refused while it is still needed, unless --force)',
  usage: retireUsage,
  prepare(args) {
    const { values, positionals } = parseCommandArgs(args, { force: { type: 'boolean' } }, { allowPositionals: true });
    if (values.help) return 'help';
    const kid = singlePositional(positionals, 'KID');
    const force = values.force ?? false;

    return async ({ services, out, err }) => {
      const { view, forced } = await services.signingKeys.retire(kid, { force, actor: CLI_ACTOR });
      if (forced) err.write(`warning: ${kid} was still needed; tokens it signed no longer verify\n`);
      out.write(`Retired ${view.alg} key ${kid}: it leaves the JWKS on every node within seconds.\n`);
      return EXIT_OK;
    };
  },
};

export const keysList = toCommandFunction(keysListCommand);
export const keysRotate = toCommandFunction(keysRotateCommand);
export const keysRetire = toCommandFunction(keysRetireCommand);
