const { MemorySession } = require('think-session-native');
const { JsMapSession } = require('../../../js-map-session');

// BENCH_SESSION picks the handle; `none` keeps a config but the route never touches it.
const handles = { none: JsMapSession, memory: MemorySession, jsmap: JsMapSession };

exports.session = {
  type: 'bench',
  common: { cookie: { name: 'thinkjs' }, maxAge: '1d' },
  bench: { handle: handles[process.env.BENCH_SESSION], maxEntries: 1000000 },
};
exports.logger = {
  type: 'console',
  console: { handle: require('think-logger3').Console, level: 'WARN' },
};
