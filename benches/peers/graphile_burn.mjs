// Burn-down of graphile-worker on PostgreSQL: our own driver, calling graphile-worker's public API.
//
// One run against an EMPTY database (benches/peers/run creates a fresh one):
//   1. install graphile-worker's schema with its own installer (makeWorkerUtils().migrate()),
//   2. enqueue N no-op jobs with WorkerUtils.addJobs(specs[]) -- the documented bulk add
//      (one graphile_worker.add_jobs() call per batch), in chunks of --enqueue-chunk,
//   3. drain with --procs worker processes (pg pools opened and warmed before the clock),
//      each running runOnce() -- graphile-worker's "run until there is nothing left to do"
//      mode -- with concurrency --concurrency, the local queue (batch fetch and lock of
//      --local-queue jobs per query) and batched completions (completeJobBatchDelay
//      --complete-batch-delay ms), as in the library's performance guide; the clock runs
//      from the release of the workers to the return of the last runOnce(), by which time
//      every batched completion has been written,
//   4. verify in the database: no job row left (graphile-worker deletes a job when it
//      succeeds) and the handlers ran exactly N times.
// Prints one JSON object on stdout.

import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { Logger, makeWorkerUtils, runOnce } from 'graphile-worker'
import pg from 'pg'

const require = createRequire(import.meta.url)
const VERSION = require('graphile-worker/package.json').version
const TASK = 'noop'

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    jobs: { type: 'string', default: '100000' },
    'enqueue-chunk': { type: 'string', default: '10000' },
    procs: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '24' },
    'local-queue': { type: 'string', default: '1000' },
    'complete-batch-delay': { type: 'string', default: '0' },
    pool: { type: 'string', default: '25' },
    child: { type: 'boolean', default: false }
  }
})
const N = Number(opt.jobs)
const CHUNK = Number(opt['enqueue-chunk'])
const PROCS = Number(opt.procs)
const CONCURRENCY = Number(opt.concurrency)
const LOCAL_QUEUE = Number(opt['local-queue'])
const COMPLETE_DELAY = Number(opt['complete-batch-delay'])
const POOL = Number(opt.pool)
if (!opt.url) throw new Error('--url is required')

// graphile-worker logs to stdout by default; keep stdout for our JSON line.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`)
})

async function child () {
  const pgPool = new pg.Pool({ connectionString: opt.url, max: POOL })
  pgPool.on('error', (e) => console.error('pg pool error:', e.message))
  pgPool.on('connect', (client) => client.on('error', (e) => console.error('pg client error:', e.message)))
  const warm = await Promise.all(Array.from({ length: POOL }, () => pgPool.connect()))
  warm.forEach((c) => c.release())
  let handled = 0
  const taskList = { [TASK]: async () => { handled++ } } // no-op work
  const go = new Promise((resolve) => process.once('message', resolve))
  process.send({ ready: true })
  await go
  await runOnce({
    pgPool,
    logger,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    taskList,
    preset: {
      worker: {
        localQueue: { size: LOCAL_QUEUE },
        completeJobBatchDelay: COMPLETE_DELAY,
        failJobBatchDelay: COMPLETE_DELAY
      }
    }
  })
  process.send({ done: true, handled })
  await pgPool.end()
  process.exit(0)
}

async function main () {
  const utils = await makeWorkerUtils({ connectionString: opt.url, logger })
  await utils.migrate() // installs the schema

  const specs = Array.from({ length: N }, () => ({ identifier: TASK, payload: {} }))
  const t0e = performance.now()
  for (let i = 0; i < N; i += CHUNK) {
    await utils.addJobs(specs.slice(i, i + CHUNK))
  }
  const enqueueS = (performance.now() - t0e) / 1000
  const count = async () => utils.withPgClient(async (c) =>
    (await c.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs')).rows[0].n)
  const queued = await count()
  if (queued !== N) throw new Error(`enqueued ${queued} of ${N}`)

  const kids = Array.from({ length: PROCS }, () =>
    fork(new URL(import.meta.url).pathname, [...process.argv.slice(2), '--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  const exited = kids.map((k) => new Promise((resolve) => k.once('exit', (code) => resolve(code))))
  await Promise.all(kids.map((k) => new Promise((resolve, reject) => {
    k.once('message', resolve)
    k.once('exit', () => reject(new Error('a worker process exited before it was ready')))
  })))

  const t0 = performance.now()
  const done = kids.map((k) => new Promise((resolve) => k.once('message', resolve)))
  kids.forEach((k) => k.send({ go: true }))
  const results = await Promise.all(done)
  const t1 = performance.now()
  const codes = await Promise.all(exited)
  if (codes.some((c) => c !== 0)) throw new Error(`worker exit codes ${codes}`)
  const drainS = (t1 - t0) / 1000

  const handled = results.reduce((a, r) => a + r.handled, 0)
  const left = await count()
  const verify = { left_in_queue: left, handled }
  const verified = left === 0 && handled === N
  await utils.release()

  console.log(JSON.stringify({
    peer: 'graphile-worker',
    version: VERSION,
    jobs: N,
    enqueue_seconds: enqueueS,
    enqueue_jobs_per_s: N / enqueueS,
    drain_seconds: drainS,
    drain_jobs_per_s: N / drainS,
    settings: {
      enqueue: `addJobs(specs[]) in chunks of ${CHUNK}`,
      mode: 'runOnce()',
      procs: PROCS,
      concurrency_per_proc: CONCURRENCY,
      local_queue_size: LOCAL_QUEUE,
      complete_job_batch_delay_ms: COMPLETE_DELAY,
      pool_per_proc: POOL,
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
