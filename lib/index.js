'use strict';
const native = require('../index.js');
const { NativeSession, MemorySession, FileSession, RedisSession, DbSession } = require('./thinkjs3.js');
const { MemoryStore, FileStore, RedisStore, DbStore } = require('./stores.js');

// The native functions (typed in index.d.ts) and the ThinkJS glue.
module.exports = {
  ...native,
  NativeSession,
  MemorySession,
  FileSession,
  RedisSession,
  DbSession,
  MemoryStore,
  FileStore,
  RedisStore,
  DbStore,
};
