'use strict';
const native = require('../index.js');
const { NativeSession, MemorySession } = require('./thinkjs3.js');
const { MemoryStore } = require('./memory.js');

// The native functions (typed in index.d.ts) and the ThinkJS glue.
module.exports = { ...native, NativeSession, MemorySession, MemoryStore };
