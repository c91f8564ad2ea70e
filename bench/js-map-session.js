'use strict';
// The JS baseline: a ThinkJS 3/4 handle keeping session objects in a JS Map, the way an
// in-memory JS adapter does (ThinkJS 2's memory adapter, for one). Same contract as
// MemorySession: writes land before the promise resolves, expiry is checked on read.
const sessions = new Map();

class JsMapSession {
  constructor(options, ctx, cookieOptions) {
    this.options = options;
    this.ctx = ctx;
    this.cookieOptions = cookieOptions;
    this.id = options.cookie;
    this.maxAge = options.maxAge || 86400000;
  }

  record() {
    const record = sessions.get(this.id);
    if (record && record.expires > Date.now()) return record;
    if (record) sessions.delete(this.id);
    return undefined;
  }

  async get(name) {
    const record = this.record();
    const data = record ? record.data : {};
    return name ? data[name] : data;
  }

  async set(name, value) {
    let record = this.record();
    if (!record) {
      record = { data: {}, expires: 0 };
      sessions.set(this.id, record);
    }
    if (value === null) delete record.data[name];
    else record.data[name] = value;
    record.expires = Date.now() + this.maxAge;
  }

  async delete() {
    sessions.delete(this.id);
  }

  // What an in-memory JS adapter's gc does (ThinkJS 2's memory adapter, for one): a sweep.
  async gc() {
    const now = Date.now();
    let removed = 0;
    for (const [id, record] of sessions) {
      if (record.expires <= now) {
        sessions.delete(id);
        removed++;
      }
    }
    return removed;
  }
}

module.exports = { JsMapSession, sessions };
