'use strict';
const fs = require('fs');
const { runScenarios } = require('./support/scenarios');

runScenarios({
  name: 'memory',
  session: `{
  type: 'memory',
  common: { cookie: { name: 'thinkjs' } },
  memory: { handle: require('think-session-native').MemorySession, maxAge: '1d', maxEntries: 10000 }
}`,
});

// Several workers: the store is shared by them (an LMDB map on /dev/shm), so a login on one
// worker is seen by the redirect the other serves. Each app gets a store folder of its own
// under one this test owns and empties first.
const SHARED = '/dev/shm/tsn-test-memory-scenarios';
fs.rmSync(SHARED, { recursive: true, force: true });
const twoWorkers = `{
  type: 'memory',
  common: { cookie: { name: 'thinkjs' } },
  memory: {
    handle: require('think-session-native').MemorySession,
    maxAge: '1d',
    maxEntries: 10000,
    path: require('path').join(${JSON.stringify(SHARED)}, process.env.PORT),
  }
}`;
runScenarios({ name: 'memory-2-workers', workers: 2, thinkjs: ['4.0.0'], session: twoWorkers });
runScenarios({
  name: 'memory-2-workers',
  workers: 2,
  thinkjs: ['3.2.15'],
  extends: ['think-session'],
  session: twoWorkers,
});
