#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

main(process.argv).then((code) => {
  // An interrupt already set 130; a step that finished anyway does not undo it.
  if (process.exitCode !== 130) process.exitCode = code;
});
