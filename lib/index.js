'use strict';
const native = require('../index.js');
const { NativeSession, MemorySession, FileSession, RedisSession, DbSession, regenerate } = require('./thinkjs3.js');
const { NativeStore, MemoryStore, SharedMemoryStore, FileStore, RedisStore, DbStore } = require('./stores.js');

// The native functions (typed in index.d.ts), the stores and the ThinkJS glue.
module.exports = {
  ...native,
  NativeSession,
  MemorySession,
  FileSession,
  RedisSession,
  DbSession,
  regenerate,
  NativeStore,
  MemoryStore,
  SharedMemoryStore,
  FileStore,
  RedisStore,
  DbStore,
};
