'use strict';
// One store at scale: the process's V8 heap and RSS with `count` live sessions, the time of
// a request cycle (new handle, get, set, end of request) with 1,000 and with `count` sessions
// stored, the longest V8 garbage-collection pause seen meanwhile and the time of a full
// collection with all of them live, and the longest event-loop
// stall while the store's gc runs over them all. Sessions are written in each store's own
// format (file: think-session-file's; redis: think-session-redis's), the same for the native
// handle and its peer. Usage: node --expose-gc bench/scale.js <variant> <count>; prints JSON.
const fs = require('fs');
const path = require('path');
const { randomUUID } = require('crypto');
const { execFileSync, spawnSync } = require('child_process');
const { EventEmitter } = require('events');
const { monitorEventLoopDelay, PerformanceObserver } = require('perf_hooks');
const { handleFor, redis } = require('./handles');

const [variant, count = '1000000'] = process.argv.slice(2);
const { handle: Handle, options, settle } = handleFor(variant);
const SMALL = 1000;
const record = (i) => ({ user: { id: i, name: `user${i}`, roles: ['reader'] } });
const cookieOptions = { name: 'thinkjs', autoUpdateRate: 0.5 };
const progress = (text) => process.stderr.write(`[bench]   ${variant}: ${text}\n`);

// Writes sessions [from, to) straight into the store, in its format.
async function populate(ids, from, to) {
  const expires = Date.now() + 86400000;
  const text = (i) => JSON.stringify({ expires, maxAge: 86400000, data: record(i) });
  if (variant === 'file' || variant === 'tsfile') {
    fs.mkdirSync(options.sessionPath, { recursive: true });
    for (let i = from; i < to; i++) fs.writeFileSync(path.join(options.sessionPath, ids[i]), text(i));
  } else if (variant === 'redis' || variant === 'tsredis') {
    // the Redis protocol, piped: SET id record PX ttl, a million in seconds
    const arg = (s) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    const chunks = [];
    for (let i = from; i < to; i++)
      chunks.push(`*5\r\n${arg('SET')}${arg(ids[i])}${arg(text(i))}${arg('PX')}${arg('86400000')}`);
    const piped = spawnSync(
      'redis-cli',
      ['-h', redis.host, '-p', String(redis.port), '-n', String(redis.db), '--pipe'],
      {
        input: chunks.join(''),
        maxBuffer: 1 << 30,
      },
    );
    if (piped.status !== 0) throw new Error(`redis-cli --pipe failed: ${piped.stderr}`);
  } else {
    const ctx = { res: new EventEmitter(), cookie() {} };
    for (let i = from; i < to; i++) {
      const handle = new Handle({ ...options, cookie: ids[i], maxAge: 86400000, strict: false }, ctx, {});
      await handle.set('user', record(i).user);
    }
  }
}

// Microseconds per request cycle over random stored sessions, and the longest V8 GC pause.
async function cycles(ids, stored, seconds) {
  let longestGc = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longestGc = Math.max(longestGc, entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  while (performance.now() < end) {
    const ctx = { res: new EventEmitter(), cookie() {} };
    const id = ids[Math.floor(Math.random() * stored)];
    const handle = new Handle({ ...options, cookie: id, maxAge: 86400000 }, ctx, cookieOptions);
    const user = await handle.get('user');
    if (!user) throw new Error(`${variant}: session ${id} not found`);
    await handle.set('visits', n);
    ctx.res.emit('finish');
    if (settle) await settle(handle);
    n++;
  }
  const us = ((performance.now() - start) * 1000) / n;
  observer.disconnect();
  return { us, longestGc };
}

// The longest event-loop stall while the store's gc runs (nothing has expired: a full scan).
async function gcStall(ids) {
  const ctx = { res: new EventEmitter(), cookie() {} };
  const handle = new Handle({ ...options, cookie: ids[0], maxAge: 86400000 }, ctx, {});
  if (typeof handle.gc !== 'function') return { gcStallMs: NaN, gcSeconds: NaN, gcError: 'no gc: Redis expires keys' };
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = performance.now();
  let error;
  try {
    await Promise.race([
      handle.gc(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('over 120 s')), 120000)),
    ]);
  } catch (err) {
    error = err.code || err.message;
  }
  await new Promise((r) => setTimeout(r, 50));
  delay.disable();
  return { gcStallMs: delay.max / 1e6, gcSeconds: (performance.now() - start) / 1000, gcError: error };
}

function clear() {
  // in a process of its own: think-session-file's gc may still hold every descriptor here
  if (options && options.sessionPath) execFileSync('rm', ['-rf', options.sessionPath]);
  if (variant === 'redis' || variant === 'tsredis') {
    execFileSync('redis-cli', ['-h', redis.host, '-p', String(redis.port), '-n', String(redis.db), 'flushdb']);
  }
}

(async () => {
  const total = Number(count);
  // Ids made from their number, not held in an array: the process keeps only what the store
  // keeps (a JS Map's keys are its own; the native stores copy theirs out of the heap).
  const salt = randomUUID().slice(0, 8);
  const ids = new Proxy([], { get: (_, i) => `sess_${salt}_${String(i).padStart(10, '0')}` });
  clear();
  global.gc();
  global.gc();
  const before = process.memoryUsage();
  await populate(ids, 0, SMALL);
  const small = await cycles(ids, SMALL, 3);
  progress(`${SMALL} sessions: ${small.us.toFixed(1)} us per request; writing ${total - SMALL} more`);
  await populate(ids, SMALL, total);
  global.gc();
  // a full V8 collection with every session live: what a major GC stalls the loop for
  const gcStart = performance.now();
  global.gc();
  const fullGcMs = performance.now() - gcStart;
  const after = process.memoryUsage();
  const large = await cycles(ids, total, 3);
  progress(`${total} sessions: ${large.us.toFixed(1)} us per request; gc over all of them`);
  const stall = await gcStall(ids);
  process.stdout.write(
    JSON.stringify({
      variant,
      count: total,
      heapUsed: after.heapUsed - before.heapUsed,
      rss: after.rss - before.rss,
      usSmall: small.us,
      usLarge: large.us,
      longestGcPauseMs: Math.max(small.longestGc, large.longestGc),
      fullGcMs,
      ...stall,
    }) + '\n',
  );
  try {
    clear();
  } catch {
    // think-session-file's gc can leave this process without a descriptor: bench/run.js clears
  }
  process.exit(0); // the peers' clients keep sockets open
})().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
