module.exports = { port: Number(process.env.PORT), host: '127.0.0.1', cluster_on: false };
