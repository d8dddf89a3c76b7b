#!/usr/bin/env node
// A stable file for npm to link as the `quota` bin: it exists before the first build, so `npm ci` links it.
import { run } from '../dist/main.js';

process.exitCode = await run(process.argv.slice(2));
