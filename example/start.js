'use strict';
// `npm start`: builds the addon if there is none yet, then serves the example app.
const cluster = require('cluster');
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { binaryFile } = require('../scripts/platform');

const root = path.join(__dirname, '..');
const port = Number(process.env.PORT) || 8360;

if (cluster.isPrimary && !fs.existsSync(path.join(root, binaryFile()))) {
  const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'install.js')], { stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status || 1);
}

const Application = require('thinkjs');
new Application({
  ROOT_PATH: __dirname,
  APP_PATH: path.join(__dirname, 'src'),
  env: 'production',
}).run();

if (cluster.isPrimary) {
  console.log(`think-session-native example (MemorySession): http://127.0.0.1:${port}`);
}
