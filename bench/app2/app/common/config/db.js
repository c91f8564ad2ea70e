// The bench's MariaDB database; each side has a table of ThinkJS 2's shape of its own.
module.exports = {
  type: 'mysql',
  adapter: {
    mysql: {
      host: '127.0.0.1',
      port: 3306,
      user: 'root',
      password: '',
      database: 'tsn_bench',
      prefix: process.env.BENCH_NATIVE === '1' ? 'tj2n_' : 'tj2b_',
    },
  },
};
