'use strict';
// `require('think-session-native/thinkjs2')` from a ThinkJS 2 bootstrap file: installs the
// native adapters into the running app and hands back the module (lib/thinkjs2.js).
const thinkjs2 = require('./thinkjs2.js');

thinkjs2.install(global.think);
module.exports = thinkjs2;
