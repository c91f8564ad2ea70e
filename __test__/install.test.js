'use strict';
// What `npm install think-session-native` does on a platform the tarball has no binary for.
const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync, execFileSync } = require('child_process');
const { packTarball, pathWithoutCargo } = require('./support/app');
const { platformName, binaryFile } = require('../scripts/platform');

// The packed package, unpacked, without its prebuilt binary.
function unpackWithoutBinary() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsn-install-'));
  execFileSync('tar', ['-xzf', packTarball(), '-C', dir]);
  const pkg = path.join(dir, 'package');
  fs.rmSync(path.join(pkg, binaryFile()));
  // npm packs every file with a 1985 mtime; give them today's so cargo compiles this source.
  const now = new Date();
  for (const file of fs.readdirSync(pkg, { recursive: true })) fs.utimesSync(path.join(pkg, file), now, now);
  return pkg;
}

describe('install without a prebuilt binary', () => {
  let pkg;
  before(() => {
    pkg = unpackWithoutBinary();
  });

  it('fails with one message naming the platform and what to do when cargo is missing', () => {
    const run = spawnSync(process.execPath, ['scripts/install.js'], {
      cwd: pkg,
      env: { ...process.env, PATH: pathWithoutCargo() },
      encoding: 'utf8',
    });
    assert.equal(run.status, 1);
    assert.match(run.stderr, new RegExp(`no prebuilt binary fits this platform \\(${platformName()}\\)`));
    assert.match(run.stderr, /rustup\.rs/);
    assert.equal(run.stderr.trim().split('\n').length, 1, `one message, got:\n${run.stderr}`);
  });

  it('builds from the bundled source when cargo is present, and the build works', () => {
    const run = spawnSync(process.execPath, ['scripts/install.js'], {
      cwd: pkg,
      // Reuse this checkout's compiled dependencies: only the package's own crate is compiled.
      env: { ...process.env, CARGO_TARGET_DIR: path.join(__dirname, '..', 'target') },
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    assert.ok(fs.existsSync(path.join(pkg, binaryFile())));
    const probe = spawnSync(
      process.execPath,
      [
        '-e',
        `const { MemorySession } = require(${JSON.stringify(pkg)});
         const s = new MemorySession({ cookie: 'abcdefgh-installed' });
         s.set('k', 1).then(() => new MemorySession({ cookie: 'abcdefgh-installed' }).get('k')).then((v) => process.stdout.write(String(v)));`,
      ],
      { encoding: 'utf8', env: { ...process.env, NODE_PATH: path.join(__dirname, '..', 'node_modules') } },
    );
    assert.equal(probe.stdout, '1', probe.stderr);
  });
});

describe('npm pack', () => {
  it('refuses to pack a debug build of the addon, and packs a release one', () => {
    const profile = require('..').buildProfile();
    assert.ok(['debug', 'release'].includes(profile));
    const run = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'prepack.js')], {
      encoding: 'utf8',
    });
    if (profile === 'release') {
      assert.equal(run.status, 0, run.stderr);
    } else {
      assert.equal(run.status, 1);
      assert.match(run.stderr, /is a debug build; run `npm run build` \(release\) before packing/);
    }
  });

  it('names one Rust version: the one Cargo.toml requires', () => {
    const required = fs
      .readFileSync(path.join(__dirname, '..', 'Cargo.toml'), 'utf8')
      .match(/^rust-version = "([^"]+)"/m)[1];
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const named = new Set([...readme.matchAll(/Rust (1\.\d+)/g)].map((m) => m[1]));
    assert.deepEqual([...named], [required]);
  });
});
