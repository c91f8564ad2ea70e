'use strict';
// Adapter level: one request cycle is new handle, get, set, end of request; one at a time.
// A handle that writes at the end of the request (the JS peers) is awaited there, so every
// counted cycle has reached its store. Usage: node bench/adapter.js <variant> <seconds>
const { randomUUID } = require('crypto');
const { EventEmitter } = require('events');
const { handleFor } = require('./handles');

const [variant, seconds = '3'] = process.argv.slice(2);
const { handle: Handle, options } = handleFor(variant);
const SESSIONS = 10000;
const ids = Array.from({ length: SESSIONS }, () => randomUUID());
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };

async function cycle(i) {
  const ctx = { res: new EventEmitter(), cookie() {} };
  if (Handle) {
    const handle = new Handle({ ...options, cookie: ids[i % SESSIONS], maxAge: 86400000 }, ctx, cookieOptions);
    const n = (await handle.get('visits')) || 0;
    await handle.set('visits', n + 1);
    if (typeof handle.flush === 'function') await handle.flush();
  }
  ctx.res.emit('finish');
}

async function run(ms) {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 100; k++) await cycle(n++);
  }
  return n;
}

(async () => {
  await run(500); // warm-up
  const start = performance.now();
  const cycles = await run(Number(seconds) * 1000);
  const elapsed = (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ variant, opsPerSec: cycles / elapsed }) + '\n');
})();
