module.exports = ['meta', 'payload', 'router', 'logic', 'controller'];
