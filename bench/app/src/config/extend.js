// BENCH_EXTEND=native: session() from think-session-native/extend, the drop-in for think-session.
module.exports = [require(process.env.BENCH_EXTEND === 'native' ? 'think-session-native/extend' : 'think-session')];
