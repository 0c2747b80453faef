/**
 * Connections to PostgreSQL: splitting a libpq URI into a password-free form
 * for child processes plus the password for their environment, and opening
 * `pg` clients with failures mapped onto drplan's error classes.
 */
import pg from 'pg';
import { ConfigError, ConnectionError, NotFoundError } from '../errors.js';

/** A connection URI split so that the password never reaches argv or messages. */
export interface ConnectionTarget {
  /** The URI with the password removed, safe for argv and messages. */
  uri: string;
  /** Environment for child processes (PGPASSWORD when the URI held one). */
  env: NodeJS.ProcessEnv;
  password?: string;
  database: string;
  /** `host:port` for messages. */
  endpoint: string;
}

/** Parses a libpq URI; `database` replaces the URI's database when given. */
export function connectionTarget(uri: string, database?: string): ConnectionTarget {
  const unset = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/.exec(uri);
  if (unset) {
    throw new ConfigError(`the database URL uses \${${unset[1]}}, but the environment variable ${unset[1]} is not set`, {
      code: 'config.variable',
      object: unset[1],
      hint: `Set ${unset[1]} in the environment of drplan.`,
    });
  }
  const url = new URL(uri);
  // libpq also takes the password as a query parameter; both forms are moved out of the URI.
  const queryPassword = url.searchParams.get('password') ?? undefined;
  url.searchParams.delete('password');
  const password = url.password ? decodeURIComponent(url.password) : queryPassword;
  url.password = '';
  if (database !== undefined) url.pathname = `/${encodeURIComponent(database)}`;
  const socketHost = url.searchParams.get('host');
  const endpoint = `${socketHost ?? (url.hostname || 'localhost')}:${url.port || '5432'}`;
  return {
    uri: url.toString(),
    env: password === undefined ? {} : { PGPASSWORD: password },
    password,
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || decodeURIComponent(url.username) || 'postgres',
    endpoint,
  };
}

/** Opens a client and maps connection failures; the caller must `end()` it. */
export async function connect(target: ConnectionTarget): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: withPassword(target), connectionTimeoutMillis: 15_000 });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw mapConnectError(err, target);
  }
  // An idle client whose server goes away emits 'error'; the next query reports it instead.
  client.on('error', () => undefined);
  return client;
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(target: ConnectionTarget, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(target);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Returns the URI with its password, for the in-process client only: pg lets values
 * parsed from a connection string override a separate `password` option.
 */
function withPassword(target: ConnectionTarget): string {
  if (target.password === undefined) return target.uri;
  const url = new URL(target.uri);
  url.password = encodeURIComponent(target.password);
  return url.toString();
}

function mapConnectError(err: unknown, target: ConnectionTarget): Error {
  const error = err as Error & { code?: string };
  if (error.code === '3D000') {
    return new NotFoundError(`database "${target.database}" does not exist on ${target.endpoint}`, {
      code: 'database.missing',
      object: target.database,
      hint: 'Check the database name in the connection URI, or create the database.',
      cause: err,
    });
  }
  if (/client password must be a string/.test(error.message ?? '')) {
    return new ConnectionError(`the server at ${target.endpoint} asks for a password, but the database URL has none (or an empty one)`, {
      code: 'database.auth',
      object: target.endpoint,
      hint: 'Put the password in the database URL, for example through ${VAR} with VAR set and not empty.',
      cause: err,
    });
  }
  if (error.code === '28P01' || error.code === '28000') {
    return new ConnectionError(`cannot connect to ${target.endpoint} as the given user: ${error.message}`, {
      code: 'database.auth',
      object: target.endpoint,
      hint: 'Check the user and password in the database URL (use ${VAR} in the plan to read the password from the environment).',
      cause: err,
    });
  }
  return new ConnectionError(`cannot connect to PostgreSQL at ${target.endpoint}: ${error.message || error.code}`, {
    code: 'database.unreachable',
    object: target.endpoint,
    hint: 'Check that the server is running and that host and port in the database URL are right.',
    cause: err,
  });
}

/** Quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
