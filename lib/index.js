'use strict';
const native = require('../index.js');
const { NativeSession, MemorySession } = require('./thinkjs3.js');
const { MemoryStore } = require('./memory.js');

module.exports = {
  NativeSession,
  MemorySession,
  MemoryStore,
  isValidId: native.isValidId,
  generateId: native.generateId,
};
