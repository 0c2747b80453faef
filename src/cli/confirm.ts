/** Confirmation of destructive steps: asked on a terminal, `--yes` otherwise. */
import { createInterface } from 'node:readline/promises';
import { AbortedError, UsageError } from '../errors.js';

/**
 * Asks the user to type `expected` to go on. Without a terminal on stdin the
 * step needs `--yes`. Any other input aborts with nothing changed.
 */
export async function confirmDestructive(question: string, expected: string, yes: boolean, flagHint: string): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new UsageError(`${question}: not confirmed because stdin is not a terminal`, {
      code: 'usage.confirm',
      hint: `Pass --yes to confirm ${flagHint}, or run on a terminal to be asked.`,
    });
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  let answer: string;
  try {
    answer = await prompt.question(`${question}\nType "${expected}" to continue: `);
  } catch (err) {
    // readline rejects with an AbortError on Ctrl-C at the prompt.
    throw new AbortedError('interrupted at the confirmation prompt; nothing was changed', { code: 'usage.interrupted', cause: err });
  } finally {
    prompt.close();
  }
  if (answer.trim() !== expected) {
    throw new UsageError(`not confirmed: the input was not "${expected}"; nothing was changed`, {
      code: 'usage.declined',
      hint: `Run the command again and type ${expected} exactly, or pass --yes.`,
    });
  }
}
