#!/usr/bin/env node
'use strict';
// The `runbook` CLI. The TypeScript sources are compiled to dist/ by `npm ci` (the prepare script).
let cli;
try {
  cli = require('../dist/client.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    console.error('runbook: dist/ is missing. Run `npm ci` (or `npm run build`) in the project first.');
    process.exit(2);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then((code) => process.exit(code));
