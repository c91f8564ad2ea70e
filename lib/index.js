'use strict';
const native = require('../index.js');
const { NativeSession, MemorySession } = require('./thinkjs3.js');

module.exports = {
  NativeSession,
  MemorySession,
  MemoryStore: native.MemoryStore,
  isValidId: native.isValidId,
  generateId: native.generateId,
};
