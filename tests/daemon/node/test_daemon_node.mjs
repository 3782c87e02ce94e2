// retrieverd end to end with Node's @grpc/grpc-js as an independent client.
//
// The client is built at run time from proto/retriever/v1/retriever.proto by
// @grpc/proto-loader (nothing generated is committed) and talks to the real
// retrieverd over unix:///path. Each test starts its own daemon with private
// socket, state, cache and config in a temporary directory, waits for its
// "ready '<path>'" line on stderr, and a real origin: tests/fixtures/
// fault_origin.py run with /usr/bin/python3, whose "PORT <n>" line says where
// it listens and whose GET /_stats counts the body bytes it sent. Both are
// stopped by PID. Only node:test and node:assert run the tests.
//
// Environment (set by ctest, see tests/daemon/CMakeLists.txt):
//   RV_DAEMON     the retrieverd binary
//   RV_PROTO_DIR  proto/ (the include root of retriever/v1/retriever.proto)
//   RV_FIXTURES   tests/fixtures (fault_origin.py)
//   RV_VERSION    the project's version (Ping answers it)
//   RV_PYTHON3    optional: the Python running fault_origin.py (/usr/bin/python3)
//
// Dependencies: `npm ci --prefix tests/daemon/node` (.ci/install-deps runs it).

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
if (!fs.existsSync(path.join(HERE, 'node_modules', '@grpc', 'grpc-js')) ||
    !fs.existsSync(path.join(HERE, 'node_modules', '@grpc', 'proto-loader'))) {
  console.error(`daemon_node: ${HERE}/node_modules is missing or incomplete; ` +
                'run .ci/install-deps (it runs `npm ci --prefix tests/daemon/node`)');
  process.exit(1);
}
const grpc = await import('@grpc/grpc-js');
const protoLoader = await import('@grpc/proto-loader');

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`daemon_node: environment variable ${name} is not set (ctest sets it)`);
    process.exit(1);
  }
  return v;
}

const DAEMON = need('RV_DAEMON');
const PROTO_DIR = need('RV_PROTO_DIR');
const FIXTURES = need('RV_FIXTURES');
const VERSION = need('RV_VERSION');
const PYTHON3 = process.env.RV_PYTHON3 || '/usr/bin/python3';
const SERVICE = 'retriever.v1.Retriever';
const READY_TIMEOUT_MS = 30000; // generous: the sanitizer build starts slowly
const STOP_BOUND_MS = 5000;     // the daemon promises to exit within this after SIGTERM
const TEST_TIMEOUT_MS = 90000;
const MiB = 1 << 20;

// keepCase: fields as in the proto (job_id); enums as their names; 64-bit
// integers as Numbers (sizes here stay far below 2^53); oneofs: true adds
// `event` naming the member of JobEvent's oneof that is set.
const packageDefinition = protoLoader.loadSync('retriever/v1/retriever.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const Retriever = grpc.loadPackageDefinition(packageDefinition).retriever.v1.Retriever;

// -- processes ------------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves with the exit code (or the signal name) once `proc` has exited,
// or with null after `ms`.
function waitExit(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve(proc.exitCode ?? proc.signalCode);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

function alive(proc) {
  return proc.exitCode === null && proc.signalCode === null;
}

// SIGKILL by PID if still running; waits for the exit (bounded).
async function killHard(proc) {
  if (proc && alive(proc)) {
    process.kill(proc.pid, 'SIGKILL');
    await waitExit(proc, 5000);
  }
}

class Daemon {
  constructor(dir) {
    this.dir = dir;
    this.sock = path.join(dir, 'run', 'retrieverd.sock');
    this.lines = [];
    this.readyPath = null;
    this.proc = null;
  }

  async start(extra = []) {
    const config = path.join(this.dir, 'retrieverd.conf');
    fs.writeFileSync(config, '# empty: defaults and flags only\n', { mode: 0o600 });
    const args = ['--socket', this.sock,
                  '--state-dir', path.join(this.dir, 'state'),
                  '--cache-dir', path.join(this.dir, 'cache'),
                  '--config', config, ...extra];
    this.proc = spawn(DAEMON, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let partial = '';
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `retrieverd not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      this.proc.stderr.on('data', (chunk) => {
        partial += chunk.toString();
        let nl;
        while ((nl = partial.indexOf('\n')) >= 0) {
          const line = partial.slice(0, nl);
          partial = partial.slice(nl + 1);
          this.lines.push(line);
          if (line.startsWith("retrieverd: ready '")) {
            this.readyPath = line.split("'")[1];
            clearTimeout(timer);
            resolve();
          }
        }
      });
      this.proc.stderr.on('end', () => {
        if (partial) this.lines.push(partial);
        partial = '';
      });
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`retrieverd exited (status ${code}) before it was ready`));
      });
    });
    await ready;
    assert.equal(this.readyPath, this.sock);
    return this;
  }

  log() {
    return this.lines.join('\n');
  }

  // stderr is read to its end: every line the daemon wrote is in log().
  async stderrDone() {
    if (!this.proc.stderr.readableEnded) {
      await Promise.race([new Promise((r) => this.proc.stderr.once('end', r)), sleep(5000)]);
    }
  }

  assertClean() {
    assert.doesNotMatch(this.log(), /Sanitizer|runtime error/, this.log());
  }

  // SIGTERM, then the bound: exit status 0 within STOP_BOUND_MS, clean log.
  async stopOk() {
    const t0 = Date.now();
    process.kill(this.proc.pid, 'SIGTERM');
    const rc = await waitExit(this.proc, STOP_BOUND_MS + 5000);
    await this.stderrDone();
    assert.equal(rc, 0, `retrieverd exit status after SIGTERM\n${this.log()}`);
    assert.ok(Date.now() - t0 < STOP_BOUND_MS, `stop took ${Date.now() - t0} ms`);
    this.assertClean();
  }
}

class Origin {
  constructor(root, rate) {
    this.root = root;
    this.rate = rate;
    this.proc = null;
    this.port = null;
  }

  async start() {
    const argv = [path.join(FIXTURES, 'fault_origin.py'), '--root', this.root,
                  '--host', '127.0.0.1', '--port', '0'];
    if (this.rate) argv.push('--rate', String(this.rate));
    this.proc = spawn(PYTHON3, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    this.port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('fault_origin.py: no PORT line in 10 s')), 10000);
      this.proc.stdout.on('data', (chunk) => {
        out += chunk.toString();
        const m = /^PORT (\d+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`fault_origin.py exited (${code}) before listening`));
      });
    });
    return this;
  }

  url(p, query = {}) {
    const q = new URLSearchParams(query).toString();
    return `http://127.0.0.1:${this.port}${p}${q ? '?' + q : ''}`;
  }

  stats() {
    return this.control('/_stats');
  }

  // GET /_log: the origin's events, oldest first (see tests/fixtures/README.md).
  log() {
    return this.control('/_log');
  }

  // GET /_wait: true once the log holds `count` events of kind `event` for
  // the case key `key` (path?query as requested), false after `seconds`.
  async wait(key, count, event = 'response', seconds = 30) {
    const q = new URLSearchParams({ key, event, count: String(count), timeout: String(seconds) });
    return (await this.control(`/_wait?${q}`, (seconds + 10) * 1000)).arrived;
  }

  control(what, ms = 10000) {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: this.port, path: what, agent: false,
                             timeout: ms }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => {
          try { resolve(JSON.parse(body)); } catch (e) { reject(e); }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${what} timed out`)));
      req.on('error', reject);
    });
  }

  async stop() {
    if (this.proc && alive(this.proc)) {
      process.kill(this.proc.pid, 'SIGTERM');
      if ((await waitExit(this.proc, 5000)) === null) await killHard(this.proc);
    }
  }
}

// Everything one test starts, stopped by PID at its end whatever happened.
class Fixture {
  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rv-node-'));
    this.data = path.join(this.tmp, 'data');
    this.out = path.join(this.tmp, 'out');
    fs.mkdirSync(this.data);
    fs.mkdirSync(this.out);
    this.daemon = null;
    this.origin = null;
    this.clients = [];
  }

  async startDaemon(extra) {
    this.daemon = new Daemon(this.tmp);
    return this.daemon.start(extra);
  }

  async startOrigin(rate) {
    this.origin = new Origin(this.data, rate);
    return this.origin.start();
  }

  client() {
    const c = new Retriever(`unix://${this.daemon.sock}`, grpc.credentials.createInsecure());
    this.clients.push(c);
    return c;
  }

  // A file of `size` random bytes under data/; returns its sha256.
  file(name, size) {
    const buf = randomBytes(size);
    fs.writeFileSync(path.join(this.data, name), buf);
    return createHash('sha256').update(buf).digest('hex');
  }

  async close() {
    for (const c of this.clients) c.close();
    if (this.daemon) await killHard(this.daemon.proc);
    if (this.origin) await this.origin.stop();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

async function withFixture(fn) {
  const f = new Fixture();
  try {
    await fn(f);
  } catch (e) {
    if (f.daemon && f.daemon.proc) {
      await killHard(f.daemon.proc);
      await f.daemon.stderrDone();
      e.message += `\n--- retrieverd log ---\n${f.daemon.log()}`;
    }
    throw e;
  } finally {
    await f.close();
  }
}

// -- calls ----------------------------------------------------------------

function deadline(ms) {
  return new Date(Date.now() + ms);
}

function unary(client, method, request, ms = 10000) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: deadline(ms) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

// Collects a server stream: resolves with {events, status} once the call has
// ended, whatever its status (the stream's error is the status, not a throw).
// `onEvent(ev, call)` sees each event as it arrives.
function collect(call, onEvent) {
  const events = [];
  return new Promise((resolve) => {
    let status = null;
    let ended = false;
    const done = () => {
      if (status && (ended || status.code !== grpc.status.OK)) resolve({ events, status });
    };
    call.on('data', (ev) => {
      events.push(ev);
      if (onEvent) onEvent(ev, call);
    });
    call.on('end', () => { ended = true; done(); });
    call.on('error', () => {}); // the same status arrives on 'status'
    call.on('status', (s) => { status = s; done(); });
  });
}

// The first event of a stream (resolves with it; the stream keeps flowing
// into `rest`, which collect() fills).
function download(client, sources, opts = {}) {
  const call = client.Download({ sources, ...opts.request }, { deadline: deadline(opts.ms ?? 60000) });
  let first;
  const firstEvent = new Promise((resolve) => { first = resolve; });
  const all = collect(call, (ev) => first(ev));
  all.then(() => first(null));
  return { call, firstEvent, all };
}

function essential(events, index) {
  return events.filter((e) => e.object_index === index && e.event !== 'accepted')
    .map((e) => e.event).filter((k) => k !== 'progress' && k !== 'retrying');
}

async function waitFor(pred, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function sha256File(p) {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

async function assertCode(promise, code, text) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code,
                 `expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    if (text) assert.ok(err.details.includes(text), `"${err.details}" lacks "${text}"`);
    return true;
  });
}

// The daemon of the tests that need a download still running when they act:
// one connection per object, so that the origin's per-connection rate bounds
// the whole download (8 s for 8 MiB at 1 MiB/s).
const SLOW_DAEMON = ['--max-connections-per-object', '1'];

// A download from the rate-limited origin, running: returns once the daemon
// says RUNNING. `all` resolves when the stream ends.
async function startSlow(f, client, name = 'slow.bin', size = 8 * MiB) {
  f.file(name, size);
  const dest = path.join(f.out, name);
  const d = download(client, [{ url: f.origin.url('/' + name), destination: dest }]);
  const first = await d.firstEvent;
  assert.ok(first, 'the stream ended before its first event');
  assert.equal(first.event, 'accepted');
  const jobId = first.job_id;
  await waitFor(async () => (await unary(client, 'Status', { job_id: jobId })).state === 'JOB_STATE_RUNNING',
                'the job to run');
  return { ...d, jobId, dest };
}

// -- tests ----------------------------------------------------------------

const opts = { timeout: TEST_TIMEOUT_MS };

test('Ping answers the version', opts, () => withFixture(async (f) => {
  await f.startDaemon();
  const r = await unary(f.client(), 'Ping', {});
  assert.equal(r.version, VERSION);
  assert.equal(r.api_version, 1);
  await f.daemon.stopOk();
}));

test('Download streams the events and delivers the right bytes; Status and List', opts,
     () => withFixture(async (f) => {
  // 1 MiB/s per connection: a second at least, so progress events come
  // (the first 200 ms after Started; an object done sooner has none).
  await f.startOrigin(1 * MiB);
  await f.startDaemon();
  const c = f.client();
  const size = 3 * MiB + 17;
  const want = f.file('a.bin', size);
  const dest = path.join(f.out, 'a.bin');
  // digest: Completed and Status carry the sha256 (none unless asked).
  const { all } = download(c, [{ url: f.origin.url('/a.bin'), destination: dest }],
                           { request: { digest: true } });
  const { events, status } = await all;
  assert.equal(status.code, grpc.status.OK, status.details);
  assert.equal(events[0].event, 'accepted');
  const jobId = events[0].job_id;
  assert.match(jobId, /^[0-9a-f]{32}$/);
  for (const e of events) assert.equal(e.job_id, jobId);
  assert.deepEqual(essential(events, 0), ['queued', 'started', 'completed']);
  const times = events.map((e) => e.time_unix_ms);
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
  const done = events.at(-1).completed;
  assert.equal(done.path, dest);
  assert.equal(done.size, size);
  assert.equal(done.sha256, want);
  assert.match(done.crc32c, /^[0-9a-f]{8}$/);
  assert.equal(sha256File(dest), want);
  // Progress is honest: it came while the bytes did, never goes backwards
  // and never passes the size.
  const progress = events.filter((x) => x.event === 'progress').map((e) => e.progress.progress.bytes_done);
  assert.ok(progress.length >= 1, 'no progress event in a download of a second or more');
  assert.ok(progress.some((b) => b > 0 && b < size), `no progress mid-download: ${progress}`);
  for (let i = 0; i < progress.length; i++) {
    assert.ok(progress[i] <= size, `progress ${progress[i]} beyond the size`);
    if (i > 0) assert.ok(progress[i] >= progress[i - 1], `progress went back: ${progress}`);
  }

  const job = await unary(c, 'Status', { job_id: jobId });
  assert.equal(job.id, jobId);
  assert.equal(job.state, 'JOB_STATE_DONE');
  assert.equal(job.objects.length, 1);
  assert.equal(job.objects[0].state, 'OBJECT_STATE_DONE');
  assert.equal(job.objects[0].url, f.origin.url('/a.bin'));
  assert.equal(job.objects[0].destination, dest);
  assert.equal(job.objects[0].progress.bytes_done, size);
  assert.equal(job.objects[0].sha256, want);
  assert.ok(job.ended_unix_ms >= job.created_unix_ms && job.created_unix_ms > 0);

  const ids = (await unary(c, 'List', {})).jobs.map((j) => j.id);
  assert.ok(ids.includes(jobId), `List: ${ids}`);
  const doneIds = (await unary(c, 'List', { states: ['JOB_STATE_DONE'] })).jobs.map((j) => j.id);
  assert.deepEqual(doneIds, [jobId]);
  const running = (await unary(c, 'List', { states: ['JOB_STATE_RUNNING', 'JOB_STATE_CANCELLED'] })).jobs;
  assert.deepEqual(running, []);
  await f.daemon.stopOk();
}));

test('batch_events: the same events in fewer messages', opts, () => withFixture(async (f) => {
  await f.startOrigin();
  await f.startDaemon();
  const c = f.client();
  const n = 60;
  const want = [];
  const sources = [];
  for (let i = 0; i < n; i++) {
    want.push(f.file(`m${i}.bin`, 1000 + i));
    sources.push({ url: f.origin.url(`/m${i}.bin`), destination: path.join(f.out, `m${i}.bin`) });
  }
  const { all } = download(c, sources, { request: { batch_events: true } });
  const { events: messages, status } = await all;
  assert.equal(status.code, grpc.status.OK, status.details);
  const events = [];
  for (const m of messages) {
    if (m.batch.length) {
      // A batch carries nothing else.
      assert.equal(m.event, undefined);
      assert.equal(m.job_id, '');
      events.push(...m.batch);
    } else {
      events.push(m);
    }
  }
  assert.equal(events[0].event, 'accepted');
  assert.ok(messages.some((m) => m.batch.length > 1), 'no message carried a batch');
  assert.ok(messages.length < events.length, `${messages.length} messages, ${events.length} events`);
  for (let i = 0; i < n; i++) {
    assert.deepEqual(essential(events, i), ['queued', 'started', 'completed'], `object ${i}`);
    assert.equal(sha256File(sources[i].destination), want[i]);
  }
  await f.daemon.stopOk();
}));

test('Cancel of a running job ends its stream with cancelled', opts, () => withFixture(async (f) => {
  await f.startOrigin(1 * MiB);
  await f.startDaemon(SLOW_DAEMON);
  const c = f.client();
  const { all, jobId, dest } = await startSlow(f, c);
  const r = await unary(c, 'Cancel', { job_id: jobId });
  assert.equal(r.state, 'JOB_STATE_CANCELLED');
  assert.equal(r.subscribers, 0);
  const { events, status } = await all;
  assert.equal(status.code, grpc.status.OK, status.details);
  assert.equal(events.at(-1).event, 'cancelled');
  assert.equal(events.at(-1).job_id, jobId);
  await waitFor(async () => (await unary(c, 'Status', { job_id: jobId })).state === 'JOB_STATE_CANCELLED',
                'Status CANCELLED');
  assert.ok(!fs.existsSync(dest), 'a cancelled download left its destination');
  // Cancelling an ended job: nothing to do, the state is reported.
  assert.equal((await unary(c, 'Cancel', { job_id: jobId })).state, 'JOB_STATE_CANCELLED');
  await f.daemon.stopOk();
}));

test("the client's call.cancel() mid-stream stops the job", opts, () => withFixture(async (f) => {
  await f.startOrigin(1 * MiB);
  await f.startDaemon(SLOW_DAEMON);
  const c = f.client();
  const { call, all, jobId, dest } = await startSlow(f, c);
  // The 1 MiB probe done, the 7 MiB range under way (7 s): cut it.
  assert.ok(await f.origin.wait('/slow.bin', 2, 'request'), 'no second request');
  call.cancel();
  const { status } = await all;
  assert.equal(status.code, grpc.status.CANCELLED);
  // Another connection sees the job stop: its last subscriber left.
  const other = f.client();
  await waitFor(async () => (await unary(other, 'Status', { job_id: jobId })).state === 'JOB_STATE_CANCELLED',
                'CANCELLED after the client went away');
  assert.ok(!fs.existsSync(dest));
  // And the origin stops sending: every response it began has ended, cut
  // short (no sleep: the origin's /_wait), and no more of the 8 MiB came.
  const key = '/slow.bin';
  const asked = (await f.origin.log()).filter((e) => e.event === 'request' && e.key === key).length;
  assert.ok(asked > 0);
  assert.ok(await f.origin.wait(key, asked), 'origin responses still open 30 s after the cancel');
  const ended = (await f.origin.log()).filter((e) => e.event === 'response' && e.key === key);
  assert.equal(ended.length, asked, 'a request after the cancel');
  assert.ok(ended.some((e) => e.outcome === 'aborted'), JSON.stringify(ended));
  assert.ok(ended.reduce((n, e) => n + e.body_bytes, 0) < 8 * MiB);
  await f.daemon.stopOk();
}));

test('unknown job ids are NOT_FOUND, malformed ones INVALID_ARGUMENT', opts, () => withFixture(async (f) => {
  await f.startDaemon();
  const c = f.client();
  const unknown = '0123456789abcdef0123456789abcdef';
  const watch = (id) => collect(c.Watch({ job_id: id }, { deadline: deadline(10000) }))
    .then(({ status }) => { if (status.code !== grpc.status.OK) throw status; return status; });
  for (const call of [(id) => unary(c, 'Status', { job_id: id }),
                      (id) => unary(c, 'Cancel', { job_id: id }),
                      watch]) {
    await assertCode(call(unknown), grpc.status.NOT_FOUND, unknown);
    await assertCode(call('not-an-id'), grpc.status.INVALID_ARGUMENT, 'job_id');
    await assertCode(call(''), grpc.status.INVALID_ARGUMENT, 'job_id');
  }
  // A bad Download request is refused and creates nothing.
  await assertCode(collect(c.Download({ sources: [] }, { deadline: deadline(10000) }))
    .then(({ status }) => { if (status.code !== grpc.status.OK) throw status; }),
  grpc.status.INVALID_ARGUMENT, 'source');
  assert.deepEqual((await unary(c, 'List', {})).jobs, []);
  await f.daemon.stopOk();
}));

test('an unknown method is UNIMPLEMENTED at once', opts, () => withFixture(async (f) => {
  await f.startDaemon();
  const c = f.client();
  for (const method of [`/${SERVICE}/NoSuchMethod`, '/other.v9.Service/Ping']) {
    const t0 = Date.now();
    await assertCode(new Promise((resolve, reject) => {
      c.makeUnaryRequest(method, (b) => b, (b) => b, Buffer.alloc(0),
                         { deadline: deadline(60000) }, (err, res) => (err ? reject(err) : resolve(res)));
    }), grpc.status.UNIMPLEMENTED, 'unknown method');
    // "At once": not at the 60 s deadline; loose for a loaded machine.
    const took = Date.now() - t0;
    assert.ok(took < 20000, `${method} answered after ${took} ms`);
  }
  assert.equal((await unary(c, 'Ping', {})).api_version, 1);
  await f.daemon.stopOk();
}));

test('SIGTERM mid-stream: the Node client sees UNAVAILABLE with a message', opts, () => withFixture(async (f) => {
  await f.startOrigin(1 * MiB);
  await f.startDaemon(SLOW_DAEMON);
  const c = f.client();
  const { all, dest } = await startSlow(f, c);
  const t0 = Date.now();
  process.kill(f.daemon.proc.pid, 'SIGTERM');
  const { status } = await all;
  assert.equal(status.code, grpc.status.UNAVAILABLE,
               `got ${grpc.status[status.code]} (${status.details}), not UNAVAILABLE`);
  assert.ok(status.details.includes('shutting down'), `details: "${status.details}"`);
  const rc = await waitExit(f.daemon.proc, STOP_BOUND_MS + 5000);
  await f.daemon.stderrDone();
  assert.equal(rc, 0, f.daemon.log());
  assert.ok(Date.now() - t0 < STOP_BOUND_MS, `exit took ${Date.now() - t0} ms`);
  f.daemon.assertClean();
  assert.ok(!fs.existsSync(dest));
}));
