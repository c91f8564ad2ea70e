// The bench's Redis database (emptied when the bench starts).
module.exports = { host: '127.0.0.1', port: 6379, db: 9 };
