'use strict';
// Adapter level: one request cycle is new handle, get, set, end of request. A handle that
// writes at the end of the request (the JS peers) is awaited there, so every counted cycle
// has reached its store. Usage: node bench/adapter.js <variant> <seconds> [in flight]
const { randomUUID } = require('crypto');
const { EventEmitter } = require('events');
const { handleFor } = require('./handles');

const [variant, seconds = '3', inflight = '1'] = process.argv.slice(2);
const { handle: Handle, options, settle } = handleFor(variant);
const SESSIONS = 10000;
const ids = Array.from({ length: SESSIONS }, () => randomUUID());
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };

async function cycle(i) {
  const ctx = { res: new EventEmitter(), cookie() {} };
  if (Handle) {
    // strict: false: the ids are made up here, and this measures the store's cycle
    const handle = new Handle(
      { ...options, cookie: ids[i % SESSIONS], maxAge: 86400000, strict: false },
      ctx,
      cookieOptions,
    );
    const n = (await handle.get('visits')) || 0;
    await handle.set('visits', n + 1);
    ctx.res.emit('finish');
    if (settle) await settle(handle);
    return;
  }
  ctx.res.emit('finish');
}

async function run(ms) {
  const end = performance.now() + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: Number(inflight) }, async () => {
      while (performance.now() < end) {
        for (let k = 0; k < 10; k++) await cycle(n++);
      }
    }),
  );
  return n;
}

(async () => {
  await run(500); // warm-up
  const start = performance.now();
  const cycles = await run(Number(seconds) * 1000);
  const elapsed = (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ variant, inflight: Number(inflight), opsPerSec: cycles / elapsed }) + '\n');
  process.exit(0); // the peers' clients keep sockets open
})();
