module.exports = {
  host: '127.0.0.1',
  port: Number(process.env.PORT) || 8360,
  workers: 1,
};
