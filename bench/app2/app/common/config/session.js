const path = require('path');

const side = process.env.BENCH_NATIVE === '1' ? 'native' : 'builtin';
module.exports = {
  name: 'thinkjs',
  type: process.env.BENCH_TJ2_TYPE,
  timeout: 86400,
  adapter: { file: { path: path.join(process.env.BENCH_DIR, `thinkjs2-${side}-session`), path_depth: 1 } },
};
