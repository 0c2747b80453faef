/**
 * Recovery targets for point-in-time restores: parsing what the user typed
 * into one exact target, and rendering it for PostgreSQL.
 *
 * A time without a UTC offset is read in the time zone of the process
 * running drplan (TZ), and the resulting instant is always shown and written
 * in UTC with an explicit offset. The server's own TimeZone setting then
 * plays no part in where recovery stops.
 */
import { UsageError } from '../errors.js';

const TIME_EXAMPLE = '2026-12-04 14:30:00+01:00, 2026-12-04T13:30:00Z or 2026-12-04 14:30 (local time)';
const LSN_EXAMPLE = '0/3000028';
const XID_EXAMPLE = '748';

/** A moment parsed from --target-time. */
export interface TargetTime {
  /** The instant, to the millisecond. */
  instant: Date;
  /** The fraction of a second as typed (up to 6 digits), so microseconds reach PostgreSQL unrounded. */
  fraction: string;
  /** The time zone used for a time typed without an offset; undefined when the input had one. */
  localZone?: string;
}

/** A recovery target: the point where recovery stops. */
export type RecoveryTarget =
  | { kind: 'time'; time: TargetTime; inclusive: boolean }
  | { kind: 'lsn'; lsn: bigint; inclusive: boolean }
  | { kind: 'xid'; xid: bigint; inclusive: boolean }
  | { kind: 'latest' };

export interface TargetOptions {
  targetTime?: string;
  targetLsn?: string;
  targetXid?: string;
  /** Only "latest" is accepted. */
  target?: string;
  /** Stop just before the target instead of just after it. */
  exclusive?: boolean;
}

/** Parses the one recovery target among the options; none or several is a usage error. */
export function parseRecoveryTarget(options: TargetOptions): RecoveryTarget {
  const givenFlags = [
    options.targetTime !== undefined && '--target-time',
    options.targetLsn !== undefined && '--target-lsn',
    options.targetXid !== undefined && '--target-xid',
    options.target !== undefined && '--target',
  ].filter((flag): flag is string => typeof flag === 'string');
  if (givenFlags.length !== 1) {
    const problem = givenFlags.length === 0 ? 'a point-in-time restore needs a recovery target' : `choose one recovery target, not ${givenFlags.join(' and ')}`;
    throw new UsageError(problem, {
      code: 'usage.target',
      hint: `Pass one of --target-time "${TIME_EXAMPLE.split(',')[0]}", --target-lsn ${LSN_EXAMPLE}, --target-xid ${XID_EXAMPLE} or --target latest.`,
    });
  }
  const inclusive = !options.exclusive;
  if (options.targetTime !== undefined) return { kind: 'time', time: parseTargetTime(options.targetTime), inclusive };
  if (options.targetLsn !== undefined) return { kind: 'lsn', lsn: parseTargetLsn(options.targetLsn), inclusive };
  if (options.targetXid !== undefined) return { kind: 'xid', xid: parseTargetXid(options.targetXid), inclusive };
  if (options.target !== 'latest') {
    throw new UsageError(`invalid --target ${JSON.stringify(options.target)}`, {
      code: 'usage.target',
      object: options.target,
      hint: 'The only named target is "latest" (replay all archived WAL); use --target-time, --target-lsn or --target-xid for a point.',
    });
  }
  if (options.exclusive) {
    throw new UsageError('--exclusive needs a target point, and --target latest has none', { code: 'usage.target', hint: 'Drop --exclusive, or pass --target-time, --target-lsn or --target-xid.' });
  }
  return { kind: 'latest' };
}

const TIME_PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Parses a date and time with an optional offset (Z, UTC, +05:30, +0530,
 * -08). Without an offset the time is local to the process time zone. A
 * local time that does not exist, or exists twice, because of a daylight
 * saving change is rejected, since guessing could recover to the wrong hour.
 */
export function parseTargetTime(value: string): TargetTime {
  const match = TIME_PATTERN.exec(value.trim());
  if (!match) throw invalidTime(value, 'expected a date and a time');
  const [year, month, day, hour, minute] = match.slice(1, 6).map(Number) as [number, number, number, number, number];
  const second = Number(match[6] ?? '0');
  const fraction = match[7] ?? '';
  const millis = Number(fraction.padEnd(3, '0').slice(0, 3));
  const fields: LocalFields = { year, month, day, hour, minute, second, millis };
  if (!fieldsInRange(fields)) throw invalidTime(value, 'a field is out of range');
  const offset = match[8];
  if (offset !== undefined) {
    const offsetMinutes = parseOffset(offset, value);
    return { instant: new Date(asUtcMillis(fields) - offsetMinutes * 60_000), fraction };
  }
  return { instant: localInstant(fields, value), fraction, localZone: processTimeZone() };
}

/** Parses an LSN such as 0/3000028. */
export function parseTargetLsn(value: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(value.trim());
  if (!match) {
    throw new UsageError(`invalid --target-lsn ${JSON.stringify(value)}`, {
      code: 'usage.target_lsn',
      object: value,
      hint: `An LSN is two hex numbers separated by "/", for example ${LSN_EXAMPLE} (see pg_current_wal_lsn()).`,
    });
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** Parses a transaction id; 0 to 2 are reserved by PostgreSQL and never name a transaction. */
export function parseTargetXid(value: string): bigint {
  const text = value.trim();
  const xid = /^\d{1,20}$/.test(text) ? BigInt(text) : undefined;
  if (xid === undefined || xid < 3n || xid >= 1n << 64n) {
    throw new UsageError(`invalid --target-xid ${JSON.stringify(value)}`, {
      code: 'usage.target_xid',
      object: value,
      hint: `A transaction id is a decimal number of 3 or more, for example ${XID_EXAMPLE} (see txid_current() or pg_current_xact_id()).`,
    });
  }
  return xid;
}

/** Formats an LSN as PostgreSQL prints it, such as 0/3000028. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** Formats a target time in UTC with an explicit offset, as recovery_target_time takes it: 2026-12-04 13:30:00.25+00:00. */
export function formatTargetTime(time: TargetTime): string {
  const iso = time.instant.toISOString();
  const fraction = time.fraction ? `.${time.fraction}` : '';
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}+00:00`;
}

/** Describes the target for messages, such as "time 2026-12-04 13:30:00+00:00 (UTC)". */
export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time': {
      const local = target.time.localZone ? `, read as local time in ${target.time.localZone}` : '';
      return `time ${formatTargetTime(target.time)} (UTC${local})`;
    }
    case 'lsn':
      return `LSN ${formatLsn(target.lsn)}`;
    case 'xid':
      return `transaction ${target.xid}`;
    case 'latest':
      return 'the end of the archived WAL (latest)';
  }
}

/** Returns the time zone of this process, such as Europe/Berlin: TZ as set, else the system zone. */
export function processTimeZone(): string {
  // TZ comes first because ICU renames some zones (Asia/Kolkata to Asia/Calcutta), and the user knows the name they set.
  return process.env.TZ || Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
}

interface LocalFields {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millis: number;
}

function fieldsInRange(f: LocalFields): boolean {
  const daysInMonth = new Date(Date.UTC(f.year, f.month, 0)).getUTCDate();
  return f.month >= 1 && f.month <= 12 && f.day >= 1 && f.day <= daysInMonth && f.hour <= 23 && f.minute <= 59 && f.second <= 59;
}

function asUtcMillis(f: LocalFields): number {
  const date = new Date(0);
  // setUTCFullYear keeps years below 100 as written, unlike Date.UTC.
  date.setUTCFullYear(f.year, f.month - 1, f.day);
  date.setUTCHours(f.hour, f.minute, f.second, f.millis);
  return date.getTime();
}

function parseOffset(text: string, value: string): number {
  if (/^(Z|UTC)$/i.test(text)) return 0;
  const match = /^([+-])(\d{2}):?(\d{2})?$/.exec(text)!;
  const hours = Number(match[2]);
  const minutes = Number(match[3] ?? '0');
  if (hours > 15 || minutes > 59) throw invalidTime(value, `the UTC offset ${text} is out of range`);
  return (match[1] === '-' ? -1 : 1) * (hours * 60 + minutes);
}

/**
 * Finds the instants whose local wall-clock reading is `fields`. The offsets
 * in force a day before and after bound every candidate, because no zone
 * changes its offset twice within a day.
 */
function localInstant(fields: LocalFields, value: string): Date {
  const wall = asUtcMillis(fields);
  const offsets = new Set([-1, 0, 1].map((days) => -new Date(wall + days * 86_400_000).getTimezoneOffset()));
  const candidates = [...new Set([...offsets].map((offset) => wall - offset * 60_000))]
    .filter((instant) => localReading(new Date(instant)) === wall)
    .sort((a, b) => a - b);
  const zone = processTimeZone();
  if (candidates.length === 0) {
    throw invalidTime(value, `this local time does not exist in ${zone} (the clocks skipped it)`);
  }
  if (candidates.length > 1) {
    const both = candidates.map((instant) => new Date(instant).toISOString()).join(' and ');
    throw invalidTime(value, `this local time happens twice in ${zone} (${both}), because the clocks were turned back`);
  }
  return new Date(candidates[0]!);
}

/** Returns a local wall-clock reading encoded as if it were UTC milliseconds. */
function localReading(date: Date): number {
  const copy = new Date(0);
  copy.setUTCFullYear(date.getFullYear(), date.getMonth(), date.getDate());
  copy.setUTCHours(date.getHours(), date.getMinutes(), date.getSeconds(), date.getMilliseconds());
  return copy.getTime();
}

function invalidTime(value: string, reason: string): UsageError {
  return new UsageError(`invalid --target-time ${JSON.stringify(value)}: ${reason}`, {
    code: 'usage.target_time',
    object: value,
    hint: `Give a date and time with an optional UTC offset, for example ${TIME_EXAMPLE}. Without an offset the time is read in the time zone of drplan's process (TZ).`,
  });
}
