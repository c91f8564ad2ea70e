'use strict';
const { runScenarios } = require('./support/scenarios');

runScenarios({
  name: 'memory',
  session: `{
  type: 'memory',
  common: { cookie: { name: 'thinkjs' } },
  memory: { handle: require('think-session-native').MemorySession, maxAge: '1d', maxEntries: 10000 }
}`,
});
