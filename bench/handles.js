'use strict';
// The handles the bench compares, by name, with the options each needs. `none` is the
// ceiling: no session work at all. `settle` waits for a write a peer makes after the
// response, so a cycle is only counted once its session has reached the store.
const os = require('os');
const path = require('path');
const { MemorySession, FileSession, RedisSession } = require('..');
const ThinkSessionFile = require('think-session-file');
const ThinkSessionRedis = require('think-session-redis');
const { JsMapSession } = require('./js-map-session');

const workDir = process.env.BENCH_DIR || path.join(os.tmpdir(), `tsn-bench-${process.pid}`);
// The machine's Redis, in a database of the bench's own (emptied when the bench starts).
const REDIS_DB = 9;
const redis = { host: '127.0.0.1', port: Number(process.env.BENCH_REDIS_PORT || 6379), db: REDIS_DB };

const handles = {
  none: { handle: null },
  jsmap: { handle: JsMapSession },
  memory: { handle: MemorySession, options: { maxEntries: 2000000 } },
  tsfile: { handle: ThinkSessionFile, options: { sessionPath: path.join(workDir, 'think-session-file') } },
  file: { handle: FileSession, options: { sessionPath: path.join(workDir, 'file-session') } },
  // think-session-redis writes on 'finish'; a PING on its connection answers after that write.
  tsredis: { handle: ThinkSessionRedis, options: redis, settle: (handle) => handle.redis.redis.ping() },
  redis: { handle: RedisSession, options: redis },
};

function handleFor(variant) {
  if (!(variant in handles)) throw new Error(`unknown variant ${variant}; one of ${Object.keys(handles).join(', ')}`);
  return handles[variant];
}

module.exports = { handleFor, handles, REDIS_DB, redis };
