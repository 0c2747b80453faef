/**
 * Lines of PostgreSQL configuration files (postgresql.conf,
 * postgresql.auto.conf): setting names checked, values quoted the way the
 * server's configuration parser reads them back.
 */
import { ConfigError } from '../errors.js';

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/**
 * Quotes a value for a configuration file. Inside single quotes the parser
 * turns '' into ' and reads backslash escapes, so both are escaped, and a
 * line break becomes \n because a value cannot span lines.
 */
export function quoteSettingValue(value: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `'${escaped}'`;
}

/** Renders `name = 'value'`, rejecting a name the parser would not read as one setting. */
export function renderSetting(name: string, value: string): string {
  if (!SETTING_NAME.test(name)) {
    throw new ConfigError(`invalid PostgreSQL setting name: ${JSON.stringify(name)}`, { code: 'postgres.setting_invalid', object: name });
  }
  return `${name} = ${quoteSettingValue(value)}`;
}
