// The example's visit counter, with and without a session.
module.exports = class extends think.Controller {
  pingAction() {
    this.body = { pid: process.pid };
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
