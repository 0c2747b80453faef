/**
 * Error classes for drplan. Every error that reaches the CLI carries a stable
 * code, the operation that failed, the object involved, an optional hint and
 * the process exit code for its class.
 */

/** Process exit codes, one per class of failure. */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  connection: 3,
  integrity: 4,
  notFound: 5,
  objectiveBreached: 6,
  locked: 7,
  interrupted: 130,
  /**
   * `wal fetch --abort-on-error` on any failure other than a missing file.
   * PostgreSQL aborts recovery when restore_command exits above 125, where
   * any lower non-zero status reads as "not archived" and ends recovery early.
   */
  recoveryAbort: 200,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface DrplanErrorOptions {
  /** Stable, machine-readable identifier such as `config.invalid`. */
  code: string;
  /** The operation drplan was doing, for example `backup` or `restore`. */
  operation?: string;
  /** The object involved: a field path, a storage key, a database name. */
  object?: string;
  /** The action that fixes the problem, printed on its own line. */
  hint?: string;
  cause?: unknown;
}

/** Base class: an error with a code, an exit code and a hint for the user. */
export class DrplanError extends Error {
  readonly code: string;
  readonly operation?: string;
  readonly object?: string;
  readonly hint?: string;
  readonly exitCode: ExitCodeValue = ExitCode.unexpected;

  constructor(message: string, options: DrplanErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.operation = options.operation;
    this.object = options.object;
    this.hint = options.hint;
  }
}

/** Invalid configuration file or environment. */
export class ConfigError extends DrplanError {
  override readonly exitCode = ExitCode.usage;
}

/** Invalid command-line usage, or a request the user must confirm first. */
export class UsageError extends DrplanError {
  override readonly exitCode = ExitCode.usage;
}

/** A database or storage endpoint could not be reached or refused the login. */
export class ConnectionError extends DrplanError {
  override readonly exitCode = ExitCode.connection;
}

/** A storage operation failed (missing bucket, permission denied, I/O error). */
export class StorageError extends DrplanError {
  override readonly exitCode = ExitCode.connection;
}

/** Stored data does not match its metadata, or an archive is unreadable. */
export class IntegrityError extends DrplanError {
  override readonly exitCode = ExitCode.integrity;
}

/** An unknown backup id, database or stored object. */
export class NotFoundError extends DrplanError {
  override readonly exitCode = ExitCode.notFound;
}

/** Another run holds the lock of the same database. */
export class LockedError extends DrplanError {
  override readonly exitCode = ExitCode.locked;
}

/** The run was interrupted by a signal or by the user. */
export class AbortedError extends DrplanError {
  override readonly exitCode = ExitCode.interrupted;
}

/** A WAL fetch failed in a way that must stop recovery instead of ending it (see ExitCode.recoveryAbort). */
export class RecoveryAbortError extends DrplanError {
  override readonly exitCode = ExitCode.recoveryAbort;
}

/** A child process (pg_dump, zstd, ...) failed. */
export class ToolError extends DrplanError {
  override readonly exitCode = ExitCode.unexpected;
}

/** Returns the exit code for any thrown value. */
export function exitCodeOf(error: unknown): ExitCodeValue {
  return error instanceof DrplanError ? error.exitCode : ExitCode.unexpected;
}
