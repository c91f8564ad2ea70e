'use strict';
// The platform part of the binary's file name, as @napi-rs/cli names it
// (think-session-native.<platform>.node) and as index.js looks for it.
const fs = require('fs');

function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    const report = process.report && process.report.getReport();
    return Boolean(report && !report.header.glibcVersionRuntime);
  }
}

function platformName() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

module.exports = { platformName, binaryFile: () => `think-session-native.${platformName()}.node` };
