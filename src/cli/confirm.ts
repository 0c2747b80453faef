/** Confirmation of destructive steps: asked on a terminal, `--yes` otherwise. */
import { createInterface } from 'node:readline/promises';
import { AbortedError, UsageError } from '../errors.js';

/**
 * Asks the user to type `expected` to go on. Without a terminal on stdin the
 * step needs `--yes`; a wrong answer aborts with nothing changed.
 */
export async function confirmDestructive(question: string, expected: string, yes: boolean, flagHint: string): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new UsageError(`${question}: refusing without confirmation because stdin is not a terminal`, {
      code: 'usage.confirm',
      hint: `Pass --yes to confirm ${flagHint}, or run on a terminal to be asked.`,
    });
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`${question}\nType "${expected}" to continue: `);
    if (answer.trim() !== expected) throw new AbortedError('not confirmed; nothing was changed', { code: 'usage.declined' });
  } finally {
    prompt.close();
  }
}
