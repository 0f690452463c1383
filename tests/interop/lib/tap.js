'use strict';
// Minimal TAP producer for the interop tests: each check prints one line,
// the plan comes last, and the exit status is non-zero when anything failed.
// Run checks in order with `await test(name, async () => {...})`.

const assert = require('node:assert/strict');

let n = 0;
let failed = 0;

function diag(text) {
  for (const line of String(text).split('\n')) process.stdout.write(`# ${line}\n`);
}

async function test(name, fn) {
  n += 1;
  try {
    await fn();
    process.stdout.write(`ok ${n} - ${name}\n`);
  } catch (err) {
    failed += 1;
    process.stdout.write(`not ok ${n} - ${name}\n`);
    diag(err && err.stack ? err.stack : err);
    if (err && err.responseBody) diag(`response body: ${err.responseBody}`);
  }
}

function skip(name, why) {
  n += 1;
  process.stdout.write(`ok ${n} - ${name} # SKIP ${why}\n`);
}

function done() {
  process.stdout.write(`1..${n}\n`);
  process.exitCode = failed ? 1 : 0;
}

// Turn a callback-style SDK call into a promise: call(cb => client.x(a, cb)).
function call(fn) {
  return new Promise((resolve, reject) => {
    fn((err, result, ...rest) => (err ? reject(err) : resolve(rest.length ? [result, ...rest] : result)));
  });
}

process.on('unhandledRejection', (err) => {
  failed += 1;
  diag(`unhandled rejection: ${err && err.stack ? err.stack : err}`);
  done();
  process.exit(1);
});

module.exports = { test, skip, done, diag, call, assert };
