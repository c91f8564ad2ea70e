'use strict';
// `npm pack` and `npm publish` ship the addon binary in the checkout: refuse a missing or a
// debug one (what `npm install` and `npm run build:debug` make in a checkout).
const fs = require('fs');
const path = require('path');
const { binaryFile } = require('./platform');

const binary = path.join(__dirname, '..', binaryFile());
if (!fs.existsSync(binary)) {
  console.error(`think-session-native: no addon binary to pack (${binaryFile()}); run \`npm run build\` first.`);
  process.exit(1);
}
const { buildProfile } = require('..');
if (buildProfile() !== 'release') {
  console.error(
    `think-session-native: ${binaryFile()} is a ${buildProfile()} build; run \`npm run build\` (release) before packing.`,
  );
  process.exit(1);
}
