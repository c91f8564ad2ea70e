'use strict';
// Runs on `npm install`. In a source checkout it builds the addon (debug) with the napi
// CLI; in an app it uses the prebuilt binary the package carries, or builds one from the
// packaged Rust source when cargo is there, or fails with one message saying what to do.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { platformName, binaryFile } = require('./platform');

const root = path.join(__dirname, '..');
const binary = path.join(root, binaryFile());
const sourceCheckout = fs.existsSync(path.join(root, '__test__'));

function fail(message) {
  console.error(`\nthink-session-native: ${message}\n`);
  process.exit(1);
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.error && result.error.code === 'ENOENT') return 'missing';
  return result.status === 0 ? 'ok' : 'failed';
}

function hasCargo() {
  const probe = spawnSync('cargo', ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' });
  return !probe.error && probe.status === 0;
}

// The toolchain the source needs, as Cargo.toml's rust-version names it.
function rustVersion() {
  const manifest = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8');
  return (manifest.match(/^rust-version\s*=\s*"([^"]+)"/m) || [])[1] || 'a recent stable';
}

const noRust =
  `no Rust toolchain found (cargo is not on the PATH), and the native addon for ` +
  `${platformName()} has to be built from source. Install Rust ${rustVersion()} or newer from ` +
  `https://rustup.rs, open a new shell, and run \`npm install\` again.`;

if (sourceCheckout) {
  if (!hasCargo()) fail(noRust);
  const napi = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
  if (!fs.existsSync(napi)) fail('the dev dependencies are missing; run `npm install` in the repository first.');
  console.log('think-session-native: building the native addon (debug) ...');
  if (run(process.execPath, [napi, 'build', '--platform']) !== 'ok') {
    fail('the Rust build failed (see the cargo output above). Fix the error and run `npm install` again.');
  }
} else if (!fs.existsSync(binary)) {
  if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
    fail(`this package carries no prebuilt binary for ${platformName()} and no source to build one.`);
  }
  if (!hasCargo()) {
    fail(`no prebuilt binary fits this platform (${platformName()}); ${noRust}`);
  }
  console.log(
    `think-session-native: no prebuilt binary for ${platformName()}; building from source (release, a few minutes) ...`,
  );
  const status = run('cargo', ['build', '--release', '--lib']);
  if (status !== 'ok')
    fail(
      `the Rust build failed (see the cargo output above); check that your Rust toolchain is ${rustVersion()} or newer.`,
    );
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  const built =
    {
      win32: 'think_session_native.dll',
      darwin: 'libthink_session_native.dylib',
    }[process.platform] || 'libthink_session_native.so';
  fs.copyFileSync(path.join(targetDir, 'release', built), binary);
}
