const { handleFor } = require('../../../handles');

// BENCH_SESSION picks the handle; `none` keeps a config but its routes never touch it.
const { handle, options } = handleFor(process.env.BENCH_SESSION);

exports.session = {
  type: 'bench',
  common: { cookie: { name: 'thinkjs' }, maxAge: '1d' },
  bench: { handle: handle || handleFor('jsmap').handle, ...options },
};
exports.logger = {
  type: 'console',
  console: { handle: require('think-logger3').Console, level: 'WARN' },
};
