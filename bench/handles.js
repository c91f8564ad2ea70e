'use strict';
// The handles the bench compares, by name, with the options each needs. `none` is the
// ceiling: no session work at all.
const os = require('os');
const path = require('path');
const { MemorySession, FileSession } = require('..');
const ThinkSessionFile = require('think-session-file');
const { JsMapSession } = require('./js-map-session');

const workDir = process.env.BENCH_DIR || path.join(os.tmpdir(), `tsn-bench-${process.pid}`);

const handles = {
  none: { handle: null },
  jsmap: { handle: JsMapSession },
  memory: { handle: MemorySession, options: { maxEntries: 2000000 } },
  tsfile: { handle: ThinkSessionFile, options: { sessionPath: path.join(workDir, 'think-session-file') } },
  file: { handle: FileSession, options: { sessionPath: path.join(workDir, 'file-session') } },
};

function handleFor(variant) {
  if (!(variant in handles)) throw new Error(`unknown variant ${variant}; one of ${Object.keys(handles).join(', ')}`);
  return handles[variant];
}

module.exports = { handleFor, handles };
