'use strict';
// Adapter level: one request cycle is new handle, get, set, end of request. A handle that
// writes at the end of the request (the JS peers) is awaited there, so every counted cycle
// has reached its store. Usage: node bench/adapter.js <variant> <seconds> [in flight]
// [session KB]: with a size, every session first gets a `filler` key of that many KB that
// the cycle never touches (a request's cost should not grow with the keys it leaves alone).
const { execFileSync } = require('child_process');
const { randomUUID } = require('crypto');
const { EventEmitter } = require('events');
const { handleFor, redis } = require('./handles');

const [variant, seconds = '3', inflight = '1', sessionKb = '0'] = process.argv.slice(2);
const { handle: Handle, options, settle } = handleFor(variant);
// Fewer sessions when each holds a filler, so that the set-up stays short.
const SESSIONS = Number(sessionKb) > 0 ? 1000 : 10000;
const ids = Array.from({ length: SESSIONS }, () => randomUUID());
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };

async function cycle(i) {
  const ctx = { res: new EventEmitter(), cookie() {} };
  if (Handle) {
    // strict: false: the ids are made up here, and this measures the store's cycle
    // Options copied property by property, as think-session does (an object spread makes
    // objects whose property loads V8 runs on a slow path: it would measure the spread).
    const handle = new Handle(
      Object.assign({}, options, { cookie: ids[i % SESSIONS], maxAge: 86400000, strict: false }),
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

// What the Redis server spends on the commands of the measured cycles (INFO commandstats,
// microseconds), for the Redis variants.
const onRedis = /redis/.test(variant);
const redisCli = (...args) =>
  execFileSync('redis-cli', ['-h', redis.host, '-p', String(redis.port), ...args], { encoding: 'utf8' });
function redisServerUs() {
  let total = 0;
  for (const line of redisCli('info', 'commandstats').split('\n')) {
    const m = line.match(/^cmdstat_(\w+):calls=\d+,usec=(\d+)/);
    if (m && m[1] !== 'info' && m[1] !== 'config') total += Number(m[2]);
  }
  return total;
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

async function fill() {
  const filler = 'x'.repeat(Number(sessionKb) * 1024);
  for (const id of ids) {
    const ctx = { res: new EventEmitter(), cookie() {} };
    const handle = new Handle(
      Object.assign({}, options, { cookie: id, maxAge: 86400000, strict: false }),
      ctx,
      cookieOptions,
    );
    await handle.set('filler', filler);
    ctx.res.emit('finish');
    if (settle) await settle(handle);
  }
}

(async () => {
  if (Handle && Number(sessionKb) > 0) await fill();
  await run(500); // warm-up
  if (onRedis) redisCli('config', 'resetstat');
  const start = performance.now();
  const cycles = await run(Number(seconds) * 1000);
  const elapsed = (performance.now() - start) / 1000;
  const result = { variant, inflight: Number(inflight), sessionKb: Number(sessionKb), opsPerSec: cycles / elapsed };
  if (onRedis) result.redisUsPerCycle = redisServerUs() / cycles;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0); // the peers' clients keep sockets open
})();
