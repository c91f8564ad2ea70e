const { MemorySession } = require('think-session-native');

// The embedded default: sessions in this process's memory, no server to install.
exports.session = {
  type: 'memory',
  common: { cookie: { name: 'thinkjs', sameSite: 'lax' }, maxAge: '1d' },
  memory: { handle: MemorySession, maxEntries: 100000 },
};
