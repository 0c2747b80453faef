import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { findTool, findToolVersions } from '../../src/postgres/tools.js';

describe('findTool', () => {
  it('picks the matching major version', async () => {
    const tool = await findTool('pg_dump', 15, '15.18');
    expect(tool.major).toBe(15);
    expect(tool.path).toBe('/usr/lib/postgresql/15/bin/pg_dump');
  });

  it('takes a newer client for an older server', async () => {
    const tool = await findTool('pg_dump', 12, '12.20');
    expect(tool.major).toBe(15);
  });

  it('rejects a server newer than every client', async () => {
    const installed = await findToolVersions('pg_dump');
    const error = await findTool('pg_dump', 99, '99.1').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.exitCode).toBe(2);
    expect(configError.code).toBe('tool.version');
    expect(configError.message).toContain('no pg_dump for PostgreSQL server 99.1: found 15.');
    expect(configError.message).toContain(installed[0]!.path);
    expect(configError.message).toContain('pg_dump must be version 99 or newer');
    expect(configError.hint).toBe('Install the PostgreSQL 99 client (on Debian: apt-get install postgresql-client-99).');
  });
});
