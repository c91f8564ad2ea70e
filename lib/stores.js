'use strict';
// The native stores as the handles see them: load/apply/destroy/gc on one store slot.
// Memory answers synchronously; the others return promises settled off the JS thread.
const native = require('../index.js');

function nativeStore(kind) {
  const create = native[`${kind}StoreCreate`];
  const load = native[`${kind}StoreLoad`];
  const apply = native[`${kind}StoreApply`];
  const touch = native[`${kind}StoreTouch`];
  const destroy = native[`${kind}StoreDestroy`];
  const rename = native[`${kind}StoreRename`];
  const gc = native[`${kind}StoreGc`];
  return class {
    constructor(options) {
      this.slot = create(options);
    }

    /** The data as JSON text, or null; a leading space marks a read that refreshed the expiry. */
    load(id, autoUpdateRate) {
      return load(this.slot, id, autoUpdateRate);
    }

    /**
     * Sets key `name` to `value`, JSON text ('null' removes the key), and the expiry to
     * now + maxAgeMs, creating the session when missing; a null name only sets the expiry.
     */
    apply(id, name, value, maxAgeMs) {
      return apply(this.slot, id, name, value, maxAgeMs);
    }

    /** Moves the expiry of a live session to now + maxAgeMs, creating nothing; false when there is none. */
    touch(id, maxAgeMs) {
      return touch(this.slot, id, maxAgeMs);
    }

    destroy(id) {
      return destroy(this.slot, id);
    }

    /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
    rename(from, to) {
      return rename(this.slot, from, to);
    }

    gc() {
      return gc(this.slot);
    }
  };
}

class MemoryStore extends nativeStore('memory') {
  get size() {
    return native.memoryStoreSize(this.slot);
  }
}

class FileStore extends nativeStore('file') {}

class RedisStore extends nativeStore('redis') {}

class DbStore extends nativeStore('db') {}

module.exports = { MemoryStore, FileStore, RedisStore, DbStore };
