'use strict';
// The handles the bench compares, by name; `none` is the ceiling (no session work at all).
const { MemorySession } = require('..');
const { JsMapSession } = require('./js-map-session');

const handles = { none: null, memory: MemorySession, jsmap: JsMapSession };

function handleFor(variant) {
  if (!(variant in handles)) throw new Error(`unknown variant ${variant}; one of ${Object.keys(handles).join(', ')}`);
  return handles[variant];
}

module.exports = { handleFor };
