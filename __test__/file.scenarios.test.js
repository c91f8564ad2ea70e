'use strict';
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { runScenarios } = require('./support/scenarios');

const session = `{
  type: 'file',
  common: { cookie: { name: 'thinkjs' } },
  file: {
    handle: require('think-session-native').FileSession,
    sessionPath: path.join(think.ROOT_PATH, 'runtime/session'),
    maxAge: '1d'
  }
}`;

// Forged cookies must leave nothing outside runtime/session, and nothing there but sessions.
function onlySessionFiles(dir) {
  const runtime = path.join(dir, 'runtime');
  assert.deepEqual(
    fs.readdirSync(runtime).filter((name) => name !== 'session' && name !== 'config'),
    [],
    'nothing beside the session folder (and the config ThinkJS writes)',
  );
  for (const name of fs.readdirSync(path.join(runtime, 'session'))) {
    assert.match(name, /^[A-Za-z0-9_-]{8,128}$/, `unexpected file ${name}`);
  }
  assert.equal(fs.existsSync(path.join(dir, 'x')), false);
  assert.equal(fs.existsSync(path.join(dir, '..', 'x')), false);
}

runScenarios({ name: 'file', session, afterForged: onlySessionFiles });
runScenarios({ name: 'file-2-workers', session, workers: 2, thinkjs: ['4.0.0'], afterForged: onlySessionFiles });
