'use strict';
// The memory store as the handles see it: load/apply/destroy/gc on one store slot.
const native = require('../index.js');

class MemoryStore {
  constructor({ maxEntries, maxBytes } = {}) {
    this.slot = native.memoryStoreCreate({ maxEntries, maxBytes });
  }

  load(id, autoUpdateRate) {
    return native.memoryStoreLoad(this.slot, id, autoUpdateRate);
  }

  apply(id, changes, maxAgeMs) {
    return native.memoryStoreApply(this.slot, id, changes, maxAgeMs);
  }

  destroy(id) {
    return native.memoryStoreDestroy(this.slot, id);
  }

  gc() {
    return native.memoryStoreGc(this.slot);
  }

  get size() {
    return native.memoryStoreSize(this.slot);
  }
}

module.exports = { MemoryStore };
