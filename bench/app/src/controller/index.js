// The example app's pages (the workload of `npm start`), plus a bare counter, a page that
// never touches the session (the ceiling) and a ping.
const Example = require('../../../../example/src/controller/index.js');

module.exports = class extends Example {
  pingAction() {
    this.body = { pid: process.pid };
  }

  staticAction() {
    this.type = 'text/html';
    this.body = Example.page('<p>Visits in this session: <b id="visits">1</b></p>');
  }

  plainAction() {
    this.body = { n: 1 };
  }

  async counterAction() {
    const n = ((await this.session('visits')) || 0) + 1;
    await this.session('visits', n);
    this.body = { n };
  }
};
