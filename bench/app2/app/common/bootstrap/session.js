if (process.env.BENCH_NATIVE === '1') require('think-session-native/thinkjs2');
