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
  await handle.gc();
  // think-session-file's gc returns before its reads and unlinks finish: wait for them.
  while (fs.readdirSync(dir).length > 0) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - start) / 1000;
  delay.disable();
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ variant, maxStallMs: delay.max / 1e6, seconds }) + '\n');
})();
