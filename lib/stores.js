'use strict';
// The native stores: one class over every store, opened by kind. Memory answers
// synchronously; the others return promises settled off the JS thread.
const cluster = require('cluster');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const native = require('../index.js');
const { toMs, sessionError } = require('./session.js');

/**
 * A store opened by kind ('memory', 'file', 'redis', 'db') with its options; the calls go
 * to the store's slot in the addon (see src/napi/store.rs for why a slot, not a class).
 */
class NativeStore {
  constructor(kind, options = {}) {
    this.slot = native.storeOpen(kind, JSON.stringify(options));
    /** True when every call but gc answers synchronously (the memory store). */
    this.sync = native.storeIsSync(this.slot);
  }

  /** The live session's data as `{ data, refreshed }`, or null. */
  load(id, autoUpdateRate) {
    return native.storeLoad(this.slot, id, autoUpdateRate);
  }

  /** One key of the live session as `{ value, refreshed }` (value null when missing), or null. */
  loadKey(id, name, autoUpdateRate) {
    return native.storeLoadKey(this.slot, id, name, autoUpdateRate);
  }

  /** Sets key `name` to `value` (JSON text, 'null' removes it) and the expiry to now + maxAgeMs. */
  apply(id, name, value, maxAgeMs) {
    return native.storeApply(this.slot, id, name, value, maxAgeMs);
  }

  /** Moves the expiry of a live session to now + maxAgeMs, creating nothing; false when none. */
  touch(id, maxAgeMs) {
    return native.storeTouch(this.slot, id, maxAgeMs);
  }

  destroy(id) {
    return native.storeDestroy(this.slot, id);
  }

  /** Moves the live session of `from` to `to` (regeneration); false when `from` has none. */
  rename(from, to) {
    return native.storeRename(this.slot, from, to);
  }

  /** Removes expired sessions off the JS thread; resolves with how many went. */
  gc() {
    return native.storeGc(this.slot);
  }

  /** Closes the store's connections (a database pool); every later call fails. */
  close() {
    return native.storeClose(this.slot);
  }

  /** Sessions held, live or not yet collected, where the store can tell (memory). */
  get size() {
    return native.storeSize(this.slot);
  }
}

const storeOf = (kind) =>
  class extends NativeStore {
    constructor(options = {}) {
      super(kind, options);
    }
  };

class MemoryStore extends storeOf('memory') {}
class SharedMemoryStore extends storeOf('shared') {}
class FileStore extends storeOf('file') {}
class RedisStore extends storeOf('redis') {}
class DbStore extends storeOf('db') {}

const HOUR = 3600 * 1000;
// setInterval takes at most 2^31-1 ms; a longer interval would fire every millisecond.
const MAX_INTERVAL = 2 ** 31 - 1;

// One store per kind, normalized options and gc interval per process, so that a handle
// made per request finds its store instead of making one.
const shared = new Map();

/**
 * The store of `kind` with `options` (its own option names, as the native store takes
 * them), collected every `gcInterval` (ms or '1h'; 0 never) by a timer that does not keep
 * the process alive.
 */
function sharedStore(kind, options, gcInterval) {
  const interval = Math.min(toMs(gcInterval, 'gcInterval', HOUR), MAX_INTERVAL);
  const key = `${kind}:${interval}:${JSON.stringify(options)}`;
  let store = shared.get(key);
  if (store) return store;
  store = new NativeStore(kind, options);
  store.key = key; // names the store in ThinkJS 2's gc registry
  shared.set(key, store);
  if (interval > 0) {
    let running = false;
    const timer = setInterval(() => {
      if (running) return; // the last run is still going: skip this tick
      running = true;
      store
        .gc()
        .catch((err) => {
          const logger = global.think && global.think.logger;
          (logger || console).error(`think-session-native: gc failed: ${err.message}`);
        })
        .finally(() => (running = false));
    }, interval);
    timer.unref();
  }
  return store;
}

const SHARED_MEMORY = '/dev/shm';

/**
 * Whether a memory store is shared by the app's workers: `shared` when given, otherwise when
 * this process is one of several cluster workers (ThinkJS 3/4 sets THINK_WORKERS; ThinkJS 2
 * says `clustered`). A per-process store would log a user out whenever the next request
 * lands on another worker.
 */
function sharesMemory(shared, clustered = cluster.isWorker && Number(process.env.THINK_WORKERS) > 1) {
  return shared === undefined || shared === null ? clustered : Boolean(shared);
}

/**
 * The folder of the app's shared memory store: on tmpfs, per user, named after the app's
 * root, so that every worker of one app finds the same store and two apps never do.
 */
function sharedMemoryPath(root) {
  if (!fs.existsSync(SHARED_MEMORY)) {
    throw sessionError(
      'ERR_SESSION_OPTIONS',
      `the memory store is shared by an app's workers through ${SHARED_MEMORY}, which this host does not have: give \`path\` (a folder on tmpfs), run one worker, or use FileSession, RedisSession or DbSession`,
    );
  }
  const app = crypto.createHash('sha256').update(path.resolve(root)).digest('hex').slice(0, 16);
  const user = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(SHARED_MEMORY, `think-session-native-${user}`, app);
}

module.exports = {
  NativeStore,
  MemoryStore,
  SharedMemoryStore,
  FileStore,
  RedisStore,
  DbStore,
  sharedStore,
  sharesMemory,
  sharedMemoryPath,
};
