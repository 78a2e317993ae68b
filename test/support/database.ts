import { randomBytes } from 'node:crypto';

/** MongoDB refuses longer database names on some versions and FerretDB's SQLite backend keeps them as file names. */
const MAX_DATABASE_NAME_LENGTH = 38;

/**
 * A URI for a database of this test's own, on the server that jest's
 * globalSetup provisioned (or MONGODB_URI). A fresh name per call, so suites
 * never see each other's data and need not clean up before they start.
 */
export function testDatabaseUri(label: string): string {
  const base = process.env.TEST_MONGODB_URI;
  if (!base) {
    throw new Error(
      'TEST_MONGODB_URI is not set. Run the tests through jest (`npm test`), whose globalSetup ' +
        '(test/support/global-setup.ts) starts a database or takes MONGODB_URI.',
    );
  }
  return withDatabaseName(base, testDatabaseName(label));
}

/** `t_<label>_<random>`: only [a-z0-9_], at most 38 characters. */
export function testDatabaseName(label: string): string {
  const suffix = randomBytes(4).toString('hex');
  const room = MAX_DATABASE_NAME_LENGTH - 't__'.length - suffix.length;
  const cleaned =
    label
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(0, room)
      .replace(/_+$/, '') || 'db';
  return `t_${cleaned}_${suffix}`;
}

/**
 * Puts `name` as the database path of a mongodb:// or mongodb+srv:// URI,
 * replacing a path that is there and keeping the query string.
 */
export function withDatabaseName(uri: string, name: string): string {
  const queryStart = uri.indexOf('?');
  const head = queryStart === -1 ? uri : uri.slice(0, queryStart);
  const query = queryStart === -1 ? '' : uri.slice(queryStart + 1);
  const schemeEnd = head.indexOf('://');
  if (schemeEnd === -1) throw new Error(`not a MongoDB connection string: ${uri}`);
  const pathStart = head.indexOf('/', schemeEnd + 3);
  const authority = pathStart === -1 ? head : head.slice(0, pathStart);
  const oldDatabase = pathStart === -1 ? '' : head.slice(pathStart + 1);

  let search = query;
  // NOTE: with credentials and no authSource, the path's database is where the
  // user authenticates; keep authenticating there after the path changes.
  if (oldDatabase && authority.includes('@') && !new URLSearchParams(query).has('authSource')) {
    search = [query, `authSource=${oldDatabase}`].filter(Boolean).join('&');
  }
  return `${authority}/${name}${search ? `?${search}` : ''}`;
}
