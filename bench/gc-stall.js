'use strict';
// The longest event-loop stall while a handle's gc removes 100,000 expired session files.
// Usage: node bench/gc-stall.js <file|tsfile> <count>; prints JSON.
const fs = require('fs');
const path = require('path');
const { monitorEventLoopDelay } = require('perf_hooks');
const { EventEmitter } = require('events');
const { handleFor } = require('./handles');

const [variant, count = '100000'] = process.argv.slice(2);
const { handle: Handle, options } = handleFor(variant);
const dir = path.join(options.sessionPath, '..', `gc-${variant}`);

(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const expired = JSON.stringify({ expires: Date.now() - 1000, maxAge: 1000, data: { a: 1 } });
  for (let i = 0; i < Number(count); i++) fs.writeFileSync(path.join(dir, `expired-session-${i}`), expired);
  const handle = new Handle(
    { sessionPath: dir, cookie: 'gc-probe-session' },
    { res: new EventEmitter(), cookie() {} },
    {},
  );
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const start = performance.now();
  let error;
  try {
    await handle.gc();
  } catch (err) {
    error = err.code || err.message;
  }
  // think-session-file's gc returns before its reads and unlinks finish: wait for them,
  // until the folder is empty or nothing has changed for 3 s (its reads can fail).
  let left = -1;
  let since = performance.now();
  while (left !== 0 && performance.now() - since < 3000) {
    await new Promise((r) => setTimeout(r, 20));
    let now;
    try {
      now = fs.readdirSync(dir).length;
    } catch (err) {
      error = error || err.code; // the peer's gc may hold every descriptor (EMFILE)
      continue;
    }
    if (now !== left) since = performance.now();
    left = now;
  }
  const seconds = (performance.now() - start) / 1000;
  delay.disable();
  process.stdout.write(JSON.stringify({ variant, maxStallMs: delay.max / 1e6, seconds, left, error }) + '\n');
  // The peer's gc may still hold every descriptor (EMFILE): the parent removes the folder.
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // left to the parent
  }
  process.exit(0);
})();
