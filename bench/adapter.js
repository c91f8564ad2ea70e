'use strict';
// Adapter level: one request cycle is new handle, get, set, end of request; one at a time.
// Usage: node bench/adapter.js <none|memory|jsmap> <seconds>; prints JSON.
const { randomUUID } = require('crypto');
const { EventEmitter } = require('events');
const { handleFor } = require('./handles');

const [variant, seconds = '3'] = process.argv.slice(2);
const Handle = handleFor(variant);
const SESSIONS = 10000;
const ids = Array.from({ length: SESSIONS }, () => randomUUID());
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };

function fakeCtx() {
  return { res: new EventEmitter(), cookie() {} };
}

async function cycle(i) {
  const ctx = fakeCtx();
  if (Handle) {
    const handle = new Handle({ cookie: ids[i % SESSIONS], maxAge: 86400000, maxEntries: 1000000 }, ctx, cookieOptions);
    const n = (await handle.get('visits')) || 0;
    await handle.set('visits', n + 1);
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
  await run(500); // warm-up, and every session exists from here on
  const start = performance.now();
  const cycles = await run(Number(seconds) * 1000);
  const elapsed = (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ variant, opsPerSec: cycles / elapsed }) + '\n');
})();
