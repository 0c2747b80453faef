/**
 * Shell quoting for command lines that drplan prints for the user or hands to
 * a program that runs them with /bin/sh (PostgreSQL's restore_command).
 * drplan's own child processes never go through a shell.
 */

/** Quotes one word for /bin/sh; plain words stay as they are for readability. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Formats a program and its arguments as one shell command line. */
export function formatCommand(words: string[]): string {
  return words.map(shellQuote).join(' ');
}
