// The bench's ThinkJS 2 app: BENCH_TJ2_TYPE picks the session type, BENCH_NATIVE=1 puts
// think-session-native/thinkjs2 behind it (else ThinkJS 2's built-in adapters serve it).
const path = require('path');
const ThinkJS = require('thinkjs2');

new ThinkJS({
  ROOT_PATH: __dirname,
  APP_PATH: path.join(__dirname, 'app'),
  RESOURCE_PATH: path.join(__dirname, 'www'),
  RUNTIME_PATH: path.join(process.env.BENCH_DIR, 'thinkjs2-runtime'),
  env: 'production',
}).run();
