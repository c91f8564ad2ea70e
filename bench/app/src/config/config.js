module.exports = { host: '127.0.0.1', port: Number(process.env.PORT), workers: 1 };
