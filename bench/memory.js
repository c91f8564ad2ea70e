'use strict';
// V8 heap and RSS held by N live sessions. Usage: node --expose-gc bench/memory.js <memory|jsmap> <count>
const { randomUUID } = require('crypto');
const { handleFor } = require('./handles');

const [variant, count = '1000000'] = process.argv.slice(2);
const { handle: Handle, options: extra } = handleFor(variant);

(async () => {
  global.gc();
  const before = process.memoryUsage();
  const options = { ...extra, maxAge: 86400000, maxEntries: Number(count) + 1000 };
  for (let i = 0; i < Number(count); i++) {
    const handle = new Handle({ ...options, cookie: randomUUID() }, undefined, {});
    await handle.set('user', { id: i, name: `user${i}`, roles: ['reader'] });
  }
  global.gc();
  global.gc();
  const after = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({ variant, heapUsed: after.heapUsed - before.heapUsed, rss: after.rss - before.rss }) + '\n',
  );
})();
