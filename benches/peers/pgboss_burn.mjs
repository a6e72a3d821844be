// Burn-down of pg-boss on PostgreSQL: our own driver, calling pg-boss's public API.
//
// One run against an EMPTY database (benches/peers/run creates a fresh one):
//   1. install pg-boss's schema with its own installer (start() with migrate on), createQueue(),
//   2. enqueue N no-op jobs with boss.insert(jobs[]) -- the documented bulk insert (one
//      INSERT ... SELECT FROM json_to_recordset per call), in chunks of --enqueue-chunk,
//   3. drain with --procs worker processes (started and connected before the clock),
//      each with --loops concurrent loops; the clock runs from the release of the workers
//      to the last completion:
//        --mode fetch (default): each loop does fetch(queue, {batchSize}) then
//          complete(queue, ids[]) until a fetch comes back empty -- batch claim and batch
//          completion, no polling delay (the fastest the library allows);
//        --mode work: boss.work(queue, {batchSize, pollingIntervalSeconds}) x loops, the
//          library's own worker loop; the end is seen by polling the job table every 20 ms,
//      the worker instances run with supervise/schedule/migrate off (pure workers);
//   4. verify in the database: every job of the queue is 'completed', N of them.
// Prints one JSON object on stdout. Node >= 20 (pg-boss 10.x).

import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import PgBoss from 'pg-boss'

const require = createRequire(import.meta.url)
const VERSION = require('pg-boss/package.json').version
const QUEUE = 'noop'

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    jobs: { type: 'string', default: '100000' },
    'enqueue-chunk': { type: 'string', default: '10000' },
    procs: { type: 'string', default: '1' },
    loops: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '1000' },
    mode: { type: 'string', default: 'fetch' },
    'polling-interval': { type: 'string', default: '0.5' },
    priority: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false }
  }
})
const N = Number(opt.jobs)
const CHUNK = Number(opt['enqueue-chunk'])
const PROCS = Number(opt.procs)
const LOOPS = Number(opt.loops)
const BATCH = Number(opt['batch-size'])
const MODE = opt.mode
const POLL = Number(opt['polling-interval'])
// Every job has the same priority, so ordering by it buys nothing: fetch({ priority: false })
// (a documented fetch/work option) orders by created_on only. --priority turns it back on.
const PRIORITY = opt.priority
if (!opt.url) throw new Error('--url is required')
if (!['fetch', 'work'].includes(MODE)) throw new Error('--mode is fetch or work')

function newBoss (extra = {}) {
  const boss = new PgBoss({
    connectionString: opt.url,
    supervise: false,
    schedule: false,
    ...extra
  })
  boss.on('error', (e) => console.error('pg-boss error:', e.message))
  return boss
}

async function child () {
  const boss = newBoss({ migrate: false, max: LOOPS + 1 })
  await boss.start()
  // Warm the pool: one connection per loop before the clock starts.
  await Promise.all(Array.from({ length: LOOPS + 1 }, () => boss.getDb().executeSql('SELECT 1')))
  const go = new Promise((resolve) => process.once('message', resolve))
  process.send({ ready: true })
  await go

  const noop = async (jobs) => {} // no-op work
  if (MODE === 'fetch') {
    let handled = 0
    const loop = async () => {
      for (;;) {
        const jobs = await boss.fetch(QUEUE, { batchSize: BATCH, priority: PRIORITY })
        if (!jobs || jobs.length === 0) return
        await noop(jobs)
        const r = await boss.complete(QUEUE, jobs.map((j) => j.id))
        handled += r.affected
      }
    }
    await Promise.all(Array.from({ length: LOOPS }, loop))
    process.send({ done: true, handled })
    await boss.stop({ graceful: false, wait: true, close: true })
  } else {
    for (let i = 0; i < LOOPS; i++) {
      await boss.work(QUEUE, { batchSize: BATCH, priority: PRIORITY, pollingIntervalSeconds: POLL }, noop)
    }
    // the parent polls the database and tells us when everything is completed
    await new Promise((resolve) => process.once('message', resolve))
    await boss.stop({ graceful: true, wait: true, close: true })
  }
  process.exit(0)
}

async function main () {
  const boss = newBoss({ max: 2 })
  await boss.start() // installs the schema (migrate is on by default)
  await boss.createQueue(QUEUE)
  const db = boss.getDb()

  const jobs = Array.from({ length: N }, () => ({ name: QUEUE, data: {} }))
  const t0e = performance.now()
  for (let i = 0; i < N; i += CHUNK) {
    await boss.insert(jobs.slice(i, i + CHUNK))
  }
  const enqueueS = (performance.now() - t0e) / 1000
  const { rows: [{ n: created }] } = await db.executeSql(
    "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state = 'created'", [QUEUE])
  if (created !== N) throw new Error(`enqueued ${created} of ${N}`)

  const kids = Array.from({ length: PROCS }, () =>
    fork(new URL(import.meta.url).pathname, [...process.argv.slice(2), '--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const exited = kids.map((k) => new Promise((resolve) => k.once('exit', (code) => resolve(code))))
  await Promise.all(kids.map((k) => new Promise((resolve, reject) => {
    k.once('message', resolve)
    k.once('exit', () => reject(new Error('a worker process exited before it was ready')))
  })))

  const t0 = performance.now()
  let t1
  kids.forEach((k) => k.send({ go: true }))
  if (MODE === 'fetch') {
    await Promise.all(kids.map((k) => new Promise((resolve) => k.once('message', resolve))))
    t1 = performance.now()
  } else {
    for (;;) {
      const { rows } = await db.executeSql(
        "SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = $1 AND state < 'completed') AS busy", [QUEUE])
      if (!rows[0].busy) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t1 = performance.now()
    kids.forEach((k) => k.send({ stop: true }))
  }
  const codes = await Promise.all(exited)
  if (codes.some((c) => c !== 0)) throw new Error(`worker exit codes ${codes}`)
  const drainS = (t1 - t0) / 1000

  const { rows: states } = await db.executeSql(
    'SELECT state::text AS state, count(*)::int AS n FROM pgboss.job WHERE name = $1 GROUP BY 1', [QUEUE])
  const { rows: [{ n: archived }] } = await db.executeSql(
    'SELECT count(*)::int AS n FROM pgboss.archive WHERE name = $1', [QUEUE])
  const verify = Object.fromEntries(states.map((r) => [r.state, r.n]))
  verify.archived = archived
  const verified = verify.completed === N && states.length === 1 && archived === 0
  await boss.stop({ graceful: false, wait: true, close: true })

  console.log(JSON.stringify({
    peer: 'pg-boss',
    version: VERSION,
    jobs: N,
    enqueue_seconds: enqueueS,
    enqueue_jobs_per_s: N / enqueueS,
    drain_seconds: drainS,
    drain_jobs_per_s: N / drainS,
    settings: {
      enqueue: `insert(jobs[]) in chunks of ${CHUNK}`,
      mode: MODE === 'fetch' ? 'fetch({batchSize}) + complete(ids[]) loops' : `work({batchSize, pollingIntervalSeconds: ${POLL}})`,
      procs: PROCS,
      loops_per_proc: LOOPS,
      batch_size: BATCH,
      fetch_priority: PRIORITY,
      pool_per_proc: LOOPS + 1,
      node: process.version
    },
    verify,
    verified
  }))
  if (!verified) {
    console.error('verification failed', verify)
    process.exit(1)
  }
}

if (opt.child) await child()
else await main()
