// Ports of the kernel's sync selftests (tools/testing/selftests/sync: sync_alloc.c, sync_fence.c,
// sync_merge.c, sync_wait.c, sync_stress_parallelism.c, sync_stress_consumer.c, sync_stress_merge.c), run
// against the model through the same uapi: /sys/kernel/debug/sync/sw_sync, SW_SYNC_IOC_*, SYNC_IOC_*, poll.
// sync.c's helpers are reproduced below (sync_wait = poll(POLLIN|POLLERR), sync_fence_count_with_status =
// FILE_INFO count then fetch). The stress tests use REAL worker threads that wait on the shared fence table;
// sw_sync timelines live on the kernel thread, so the INCs the C threads make themselves are made here on
// the workers' behalf, when they report. Iteration counts are cut down; nothing sleeps: every ordering comes
// from a fence or from an Atomics wait on a shared counter.
//
// This file is also the worker's module: a worker thread imports it (through ts-worker-entry.mjs) and runs
// `workerMain` instead of the suites.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
// Every fence kind, registered on every thread that loads this file (main and workers alike).
import '../../src/kernel/kernel.js';
import '../fixtures/mock-fence-ops.js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  dmaFencePut,
  dmaFenceWaitTimeout,
  type FenceHandle,
  type FenceMisuse,
  FenceTable,
  MAX_SCHEDULE_TIMEOUT,
  STATE_SIGNALED,
} from '../../src/kernel/dma-fence.js';
import { EBADF, ENOTTY } from '../../src/kernel/errno.js';
import { Kernel } from '../../src/kernel/kernel.js';
import type { Process } from '../../src/kernel/process.js';
import { SW_SYNC_PATH } from '../../src/kernel/sw-sync.js';
import { syncFileGetFence } from '../../src/kernel/sync-file.js';
import {
  O_RDWR,
  POLLERR,
  POLLIN,
  type PollFd,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
} from '../../src/kernel/uapi.js';

// --- the worker side --------------------------------------------------------------------------------

type Job =
  /** stress_parallelism: wait on each point in turn, then bump the unlocked counter once. */
  | { role: 'parallel'; sab: SharedArrayBuffer; shared: SharedArrayBuffer; fences: number[] }
  /** stress_consumer: wait for the consumer's point of each round, count, report the round. */
  | { role: 'producer'; sab: SharedArrayBuffer; shared: SharedArrayBuffer; fences: number[]; id: number }
  /** stress_merge: one wait on the merged fence; report which stage (shared[0]) the main thread had reached. */
  | { role: 'merge-waiter'; sab: SharedArrayBuffer; shared: SharedArrayBuffer; fence: number };

type WorkerMessage =
  | { kind: 'done'; result: unknown }
  | { kind: 'progress'; id: number; round: number }
  | { kind: 'misuse'; misuse: FenceMisuse };

/** sync_stress_consumer's "alternate means of waiting": a loop of short timed waits (1 ms each). */
function timedWaitLoop(t: FenceTable, f: FenceHandle): number {
  for (;;) {
    const ret = dmaFenceWaitTimeout(t, f, true, 1e6);
    if (ret !== 0) return ret;
  }
}

function workerMain(job: Job): void {
  const post = (m: WorkerMessage): void => parentPort?.postMessage(m);
  const t = FenceTable.attach(job.sab, { onMisuse: (misuse) => post({ kind: 'misuse', misuse }) });
  const shared = new Int32Array(job.shared);
  switch (job.role) {
    case 'parallel': {
      const out: { ret: number; seen: number }[] = [];
      for (const f of job.fences) {
        const ret = dmaFenceWaitTimeout(t, f, true, MAX_SCHEDULE_TIMEOUT);
        // The critical section is a plain load and store: only the fences keep the threads apart.
        const seen = Atomics.load(shared, 0);
        Atomics.store(shared, 0, seen + 1);
        Atomics.notify(shared, 0);
        out.push({ ret, seen });
      }
      post({ kind: 'done', result: out });
      return;
    }
    case 'producer': {
      const out: { ret: number; before: number }[] = [];
      job.fences.forEach((f, round) => {
        const ret =
          (round + job.id) % 4 === 0 ? timedWaitLoop(t, f) : dmaFenceWaitTimeout(t, f, true, MAX_SCHEDULE_TIMEOUT);
        const before = Atomics.add(shared, 0, 1); // the C test's mutex-protected counter++
        out.push({ ret, before });
        post({ kind: 'progress', id: job.id, round });
      });
      post({ kind: 'done', result: out });
      return;
    }
    case 'merge-waiter': {
      Atomics.store(shared, 1, 1); // about to wait: the main thread starts triggering only now
      Atomics.notify(shared, 1);
      const ret = dmaFenceWaitTimeout(t, job.fence, true, MAX_SCHEDULE_TIMEOUT);
      const signalled = t.stateOf(job.fence) === STATE_SIGNALED;
      post({ kind: 'done', result: { ret, stage: Atomics.load(shared, 0), signalled } });
      return;
    }
  }
}

if (!isMainThread) workerMain(workerData as Job);

// --- the main thread: sync.c's helpers over the model ------------------------------------------------

const MEM = { systemBytes: 8 << 20, cmaBytes: 8 << 20, carveoutBytes: 8 << 20 };
const FENCE_STATUS_ACTIVE = 0;
const FENCE_STATUS_SIGNALED = 1;
const entry = new URL('../fixtures/ts-worker-entry.mjs', import.meta.url);
/** A lost wakeup shows as a hang: fail it well inside the file's 30 s budget (a run takes ~1 s). */
const WORKER_TEST = { timeout: 20_000 };

interface FenceInfo {
  obj_name: string;
  driver_name: string;
  status: number;
  flags: number;
  timestamp_ns: number;
}

class Sync {
  readonly k = new Kernel({ memory: MEM });
  readonly p: Process = this.k.createProcess({ name: 'sync-test', uid: 0, gid: 0 });

  /** sw_sync_timeline_create(). */
  timelineCreate(): number {
    return this.p.open(SW_SYNC_PATH, O_RDWR);
  }

  /** sw_sync_timeline_inc(). */
  timelineInc(tl: number, count: number): number {
    return this.p.ioctl(tl, SW_SYNC_IOC_INC, count);
  }

  /** sw_sync_fence_create(): the sync_file fd, or the negative errno. */
  fenceCreate(tl: number, name: string, value: number): number {
    const data = { value, name, fence: -1 };
    const err = this.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, data);
    return err < 0 ? err : data.fence;
  }

  /** sw_sync_fence_is_valid() / sw_sync_timeline_is_valid(): fcntl(F_GETFD) succeeds. */
  isValid(fd: number): boolean {
    return fd >= 0 && typeof this.p.fdLink(fd) === 'string';
  }

  /** sync_merge(). */
  merge(name: string, fd1: number, fd2: number): number {
    const data = { name, fd2, fence: -1, flags: 0, pad: 0 };
    const err = this.p.ioctl(fd1, SYNC_IOC_MERGE, data);
    return err < 0 ? err : data.fence;
  }

  /** sync_wait(): poll for POLLIN|POLLERR. */
  wait(fd: number, timeoutMs: number): number {
    return this.p.poll([{ fd, events: POLLIN | POLLERR }], timeoutMs);
  }

  /** sync.c's sync_file_info(): the count query, then the fetch of every leaf. */
  fileInfo(fd: number): { status: number; numFences: number; leaves: FenceInfo[] } | null {
    const info = { name: '', status: 0, flags: 0, num_fences: 0, pad: 0, sync_fence_info: [] as FenceInfo[] };
    if (this.p.ioctl(fd, SYNC_IOC_FILE_INFO, info) < 0) return null;
    const leaves: FenceInfo[] = [];
    if (info.num_fences) {
      const full = { ...info, flags: 0, sync_fence_info: leaves };
      if (this.p.ioctl(fd, SYNC_IOC_FILE_INFO, full) < 0) return null;
      return { status: full.status, numFences: full.num_fences, leaves };
    }
    return { status: info.status, numFences: 0, leaves };
  }

  /** sync_fence_size(). */
  size(fd: number): number {
    return this.fileInfo(fd)?.numFences ?? 0;
  }

  /** sync_fence_count_with_status(). */
  countWithStatus(fd: number, status: number): number {
    const info = this.fileInfo(fd);
    if (info === null) return -1;
    return info.leaves.filter((l) => l.status === status).length;
  }

  /** The fence behind a sync_file, with a reference the caller puts (a worker may wait on it meanwhile). */
  fenceOf(fd: number): FenceHandle {
    const h = this.k.runAs(this.p, () => syncFileGetFence(this.k, fd));
    expect(h).not.toBeNull();
    return h as FenceHandle;
  }

  put(h: FenceHandle): void {
    dmaFencePut(this.k.fences, h);
  }

  /** Leak check: every fd but stdio closed, no fence left, no misuse reported. */
  closeAll(): void {
    for (const fd of this.p.files.fds()) if (fd > 2) expect(this.p.close(fd)).toBe(0);
    expect(this.k.fences.liveCount).toBe(0);
    expect(this.k.warnings).toEqual([]);
  }
}

/** A worker running this file's `workerMain`: `done` resolves with its result; `failed` only rejects. */
interface Spawned {
  worker: Worker;
  done: Promise<unknown>;
  failed: Promise<never>;
}

/** Workers of the running test: terminated after it, so a failed test cannot leave one blocked. */
const running: Worker[] = [];

function spawn(job: Job, onProgress?: (m: { id: number; round: number }) => void): Spawned {
  const worker = new Worker(entry, { workerData: { module: import.meta.filename, ...job } });
  running.push(worker);
  let fail: (e: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => {}); // observed through `done` and the races below
  const done = new Promise<unknown>((resolve, reject) => {
    failed.catch(reject);
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'misuse') fail(new Error(`worker misuse: ${m.misuse.rule}: ${m.misuse.message}`));
      else if (m.kind === 'progress') onProgress?.(m);
      else resolve(m.result);
    });
  });
  done.catch(() => {}); // a test that fails elsewhere may never await it
  worker.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
  worker.on('exit', (code) => {
    if (code !== 0) fail(new Error(`worker exited with ${code}`));
  });
  return { worker, done, failed };
}

/** Await `shared[index] >= target` without blocking the event loop; a worker failure ends the wait. */
async function counterReaches(shared: Int32Array, target: number, workers: Spawned[], index = 0): Promise<number> {
  for (;;) {
    const v = Atomics.load(shared, index);
    if (v >= target) return v;
    const r = Atomics.waitAsync(shared, index, v);
    if (r.async) await Promise.race([r.value, ...workers.map((s) => s.failed)]);
  }
}

/** Let the event loop (and so any message from a worker that woke too early) run once. */
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A small deterministic PRNG (xorshift32) for the random merge test. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

if (isMainThread) {
  afterEach(async () => {
    await Promise.all(running.splice(0).map((w) => w.terminate()));
  });

  describe('sync_alloc.c', () => {
    it('test_alloc_timeline: a timeline fd is valid until closed; closing it twice is -EBADF', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      expect(s.isValid(tl)).toBe(true);
      expect(s.p.close(tl)).toBe(0);
      expect(s.isValid(tl)).toBe(false);
      expect(s.p.close(tl)).toBe(-EBADF);
      s.closeAll();
    });

    it('test_alloc_fence: a fence on a timeline is a valid sync_file fd', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      const fence = s.fenceCreate(tl, 'allocFence', 1);
      expect(s.isValid(fence)).toBe(true);
      expect(s.p.fdLink(fence)).toBe('anon_inode:sync_file');
      expect(s.countWithStatus(fence, FENCE_STATUS_ACTIVE)).toBe(1);
      expect(s.p.close(fence)).toBe(0);
      expect(s.p.close(tl)).toBe(0);
      s.closeAll();
    });

    it('test_alloc_fence_negative: no fence on fd -1, on a closed timeline fd, or on a non-timeline', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      expect(s.fenceCreate(-1, 'fence', 1)).toBe(-EBADF);
      const gone = s.timelineCreate();
      expect(s.p.close(gone)).toBe(0);
      expect(s.fenceCreate(gone, 'fence', 1)).toBe(-EBADF);
      expect(s.fenceCreate(0, 'fence', 1)).toBe(-ENOTTY); // stdin is /dev/null
      expect(s.k.fences.liveCount).toBe(0);
      expect(s.isValid(tl)).toBe(true);
      s.closeAll();
    });
  });

  describe('sync_fence.c', () => {
    it('test_fence_one_timeline_wait: pending until the timeline reaches the point, then stays signalled', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      const fence = s.fenceCreate(tl, 'allocFence', 5);
      expect(s.isValid(fence)).toBe(true);
      expect(s.wait(fence, 0)).toBe(0);
      expect(s.timelineInc(tl, 1)).toBe(0); // 0 -> 1
      expect(s.wait(fence, 0)).toBe(0);
      expect(s.timelineInc(tl, 4)).toBe(0); // 1 -> 5: signals
      expect(s.wait(fence, 0)).toBeGreaterThan(0);
      expect(s.timelineInc(tl, 10)).toBe(0); // further ahead: still signalled
      expect(s.wait(fence, 0)).toBeGreaterThan(0);
      expect(s.countWithStatus(fence, FENCE_STATUS_SIGNALED)).toBe(1);
      s.closeAll();
    });

    it('test_fence_one_timeline_merge: d = merge(c, merge(b, a)) has one point and signals with the max', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      const a = s.fenceCreate(tl, 'allocFence', 1);
      const b = s.fenceCreate(tl, 'allocFence', 2);
      const c = s.fenceCreate(tl, 'allocFence', 3);
      expect([a, b, c].every((fd) => s.isValid(fd))).toBe(true);
      const d = s.merge('mergeFence', c, s.merge('mergeFence', b, a));
      expect(s.isValid(d)).toBe(true);
      // One timeline: every fence, d included, holds exactly one active point (d is c's point itself).
      for (const fd of [a, b, c, d]) expect(s.countWithStatus(fd, FENCE_STATUS_ACTIVE)).toBe(1);
      expect(s.size(d)).toBe(1);
      s.timelineInc(tl, 1);
      expect(s.countWithStatus(a, FENCE_STATUS_SIGNALED)).toBe(1);
      expect(s.countWithStatus(d, FENCE_STATUS_ACTIVE)).toBe(1);
      s.timelineInc(tl, 1);
      expect(s.countWithStatus(b, FENCE_STATUS_SIGNALED)).toBe(1);
      expect(s.countWithStatus(d, FENCE_STATUS_ACTIVE)).toBe(1);
      s.timelineInc(tl, 1);
      expect(s.countWithStatus(c, FENCE_STATUS_SIGNALED)).toBe(1);
      expect(s.countWithStatus(d, FENCE_STATUS_ACTIVE)).toBe(0);
      expect(s.countWithStatus(d, FENCE_STATUS_SIGNALED)).toBe(1);
      s.closeAll();
    });
  });

  describe('sync_merge.c', () => {
    it('test_fence_merge_same_fence: a fence merged with itself signals with it, not before', () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      const fence = s.fenceCreate(tl, 'allocFence', 5);
      const merged = s.merge('mergeFence', fence, fence);
      expect(s.isValid(merged)).toBe(true);
      expect(s.size(merged)).toBe(1);
      expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(0);
      s.timelineInc(tl, 4);
      expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(0);
      s.timelineInc(tl, 1);
      expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(1);
      s.closeAll();
    });

    it('merge of two timelines: both points kept, counted per status as each timeline advances', () => {
      const s = new Sync();
      const tA = s.timelineCreate();
      const tB = s.timelineCreate();
      const merged = s.merge('mergeFence', s.fenceCreate(tA, 'a', 3), s.fenceCreate(tB, 'b', 2));
      expect(s.size(merged)).toBe(2);
      expect(s.countWithStatus(merged, FENCE_STATUS_ACTIVE)).toBe(2);
      s.timelineInc(tB, 2);
      expect(s.countWithStatus(merged, FENCE_STATUS_ACTIVE)).toBe(1);
      expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(1);
      expect(s.wait(merged, 0)).toBe(0);
      s.timelineInc(tA, 3);
      expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(2);
      expect(s.wait(merged, 0)).toBe(1);
      s.closeAll();
    });
  });

  describe('sync_wait.c', () => {
    it('test_fence_multi_timeline_wait: a merge of three timelines waits for all three (poll)', () => {
      const s = new Sync();
      const [tA, tB, tC] = [s.timelineCreate(), s.timelineCreate(), s.timelineCreate()] as [number, number, number];
      const fA = s.fenceCreate(tA, 'fenceA', 5);
      const fB = s.fenceCreate(tB, 'fenceB', 5);
      const fC = s.fenceCreate(tC, 'fenceC', 5);
      const merged = s.merge('mergeFence', fC, s.merge('mergeFence', fB, fA));
      expect(s.isValid(merged)).toBe(true);
      expect(s.countWithStatus(merged, FENCE_STATUS_ACTIVE)).toBe(3);
      expect(s.wait(merged, 0)).toBe(0);
      const steps: [number, number, number][] = [
        [tA, 2, 1],
        [tB, 1, 2],
        [tC, 0, 3],
      ];
      for (const [tl, active, signaled] of steps) {
        expect(s.timelineInc(tl, 5)).toBe(0);
        expect(s.countWithStatus(merged, FENCE_STATUS_ACTIVE)).toBe(active);
        expect(s.countWithStatus(merged, FENCE_STATUS_SIGNALED)).toBe(signaled);
        expect(s.wait(merged, 0)).toBe(active === 0 ? 1 : 0);
      }
      expect(s.wait(merged, 100)).toBeGreaterThan(0); // already signalled: returns at once
      s.closeAll();
    });

    it('a wait that starts before the signal returns once the timeline reaches the point (pollAsync)', async () => {
      const s = new Sync();
      const tl = s.timelineCreate();
      const fence = s.fenceCreate(tl, 'fence', 2);
      const fds: PollFd[] = [{ fd: fence, events: POLLIN | POLLERR }];
      const incs: number[] = [];
      // Two INCs queued behind the poll: the first leaves the point pending, the second reaches it.
      setImmediate(() => {
        incs.push(s.wait(fence, 0));
        s.timelineInc(tl, 1);
        setImmediate(() => {
          incs.push(s.wait(fence, 0));
          s.timelineInc(tl, 1);
        });
      });
      expect(await s.p.pollAsync(fds, -1)).toBe(1);
      expect(incs).toEqual([0, 0]);
      expect(fds[0]?.revents).toBe(POLLIN);
      expect(s.wait(fence, 0)).toBe(1);
      s.closeAll();
    });
  });

  describe('sync_stress_*.c with real worker threads', () => {
    it(
      'stress_parallelism: workers wake on their own points of one timeline, strictly in order',
      WORKER_TEST,
      async () => {
        const s = new Sync();
        const tl = s.timelineCreate();
        const threads = 3;
        const iterations = 40;
        const shared = new Int32Array(new SharedArrayBuffer(4));
        // Point v (1-based) belongs to worker (v - 1) % threads: the C test's i * 2 + thread_id, for N threads.
        const handles: FenceHandle[][] = Array.from({ length: threads }, () => []);
        for (let v = 1; v <= threads * iterations; v++) {
          const fd = s.fenceCreate(tl, 'fence', v);
          expect(s.isValid(fd)).toBe(true);
          handles[(v - 1) % threads]?.push(s.fenceOf(fd));
        }
        const workers = handles.map((fences) =>
          spawn({ role: 'parallel', sab: s.k.fences.sab, shared: shared.buffer as SharedArrayBuffer, fences }),
        );
        for (let v = 1; v <= threads * iterations; v++) {
          // Nobody ran ahead of the timeline...
          expect(Atomics.load(shared, 0)).toBe(v - 1);
          expect(s.timelineInc(tl, 1)).toBe(0);
          // ...and exactly the owner of point v runs now.
          expect(await counterReaches(shared, v, workers)).toBe(v);
        }
        const results = (await Promise.all(workers.map((w) => w.done))) as { ret: number; seen: number }[][];
        results.forEach((out, id) => {
          expect(out).toHaveLength(iterations);
          out.forEach(({ ret, seen }, i) => {
            expect(ret).toBeGreaterThan(0);
            expect(seen).toBe(i * threads + id); // the counter value left by the point before this one
          });
        });
        expect(Atomics.load(shared, 0)).toBe(threads * iterations);
        for (const h of handles.flat()) s.put(h);
        s.closeAll();
      },
    );

    it(
      'stress_consumer: producers and a consumer take turns through fences; count = iterations × threads',
      WORKER_TEST,
      async () => {
        const s = new Sync();
        const threads = 3;
        const iterations = 30;
        const consumerTl = s.timelineCreate();
        const producerTls = Array.from({ length: threads }, () => s.timelineCreate());
        const shared = new Int32Array(new SharedArrayBuffer(4));
        // Each producer's point for each round on the consumer timeline (what mpsc_producer_thread creates).
        const rounds: FenceHandle[][] = Array.from({ length: threads }, () => []);
        for (let i = 0; i < iterations; i++) {
          for (let id = 0; id < threads; id++) rounds[id]?.push(s.fenceOf(s.fenceCreate(consumerTl, 'fence', i)));
          const byProducer = rounds.map((r) => r[i]);
          // Round 0 is already reached: each create is a new, born-signalled point. Later rounds are pending
          // and every producer's create returns the same point.
          expect(new Set(byProducer).size).toBe(i === 0 ? threads : 1);
        }
        const incs: string[] = [];
        const workers = rounds.map((fences, id) =>
          spawn(
            { role: 'producer', sab: s.k.fences.sab, shared: shared.buffer as SharedArrayBuffer, fences, id },
            // The producer's sw_sync_timeline_inc(producer_timelines[id], 1), made on the kernel thread.
            (m) => {
              const ret = s.timelineInc(producerTls[m.id] ?? -1, 1);
              if (ret !== 0) incs.push(`producer ${m.id} round ${m.round}: ${ret}`);
            },
          ),
        );
        for (let it = 1; it <= iterations; it++) {
          // mpcs_consumer_thread: merge every producer's point `it`, wait, check, release the producers.
          let fence = s.fenceCreate(producerTls[0] ?? -1, 'name', it);
          for (let id = 1; id < threads; id++) {
            const tmp = s.fenceCreate(producerTls[id] ?? -1, 'name', it);
            const merged = s.merge('name', tmp, fence);
            expect(s.p.close(tmp)).toBe(0);
            expect(s.p.close(fence)).toBe(0);
            fence = merged;
          }
          expect(s.isValid(fence)).toBe(true);
          const fds: PollFd[] = [{ fd: fence, events: POLLIN | POLLERR }];
          // Vary the means of waiting: a blocking-forever poll, or short timed polls.
          const wait = async (): Promise<number> => {
            if (it % 4 !== 0) return s.p.pollAsync(fds, -1);
            for (;;) {
              const n = await s.p.pollAsync(fds, 1);
              if (n !== 0) return n;
            }
          };
          expect(await Promise.race([wait(), ...workers.map((w) => w.failed)])).toBe(1);
          expect(s.fileInfo(fence)?.status).toBe(1);
          expect(Atomics.load(shared, 0)).toBe(threads * it);
          expect(s.p.close(fence)).toBe(0);
          expect(s.timelineInc(consumerTl, 1)).toBe(0);
        }
        const results = (await Promise.all(workers.map((w) => w.done))) as { ret: number; before: number }[][];
        expect(incs).toEqual([]);
        expect(Atomics.load(shared, 0)).toBe(iterations * threads);
        for (const out of results) {
          expect(out).toHaveLength(iterations);
          out.forEach(({ ret, before }, round) => {
            expect(ret).toBeGreaterThan(0);
            // Within round `round`: every producer of the round before has counted, none of the round after.
            expect(before).toBeGreaterThanOrEqual(threads * round);
            expect(before).toBeLessThan(threads * (round + 1));
          });
        }
        for (const h of rounds.flat()) s.put(h);
        s.closeAll();
      },
    );

    it(
      'stress_merge: random merges over many timelines keep the latest point of each; signals with the last',
      WORKER_TEST,
      async () => {
        const s = new Sync();
        const timelineCount = 12;
        const mergeCount = 1200;
        const rand = xorshift(0x5eed_1234);
        const timelines = Array.from({ length: timelineCount }, () => s.timelineCreate());
        let fence = s.fenceCreate(timelines[0] ?? -1, 'fence', 0);
        expect(s.isValid(fence)).toBe(true);
        // The latest point merged per timeline (the C test's fence_map); point 0 is born signalled and dropped.
        const latest: number[] = Array.from({ length: timelineCount }, () => 0);
        for (let i = 0; i < mergeCount; i++) {
          const offset = rand() % timelineCount;
          const point = 1 + (rand() % 100_000);
          latest[offset] = Math.max(latest[offset] ?? 0, point);
          const tmp = s.fenceCreate(timelines[offset] ?? -1, 'fence', point);
          const merged = s.merge('merge', tmp, fence);
          expect(s.p.close(tmp)).toBe(0);
          expect(s.p.close(fence)).toBe(0);
          fence = merged;
          expect(s.isValid(fence)).toBe(true);
        }
        const used = latest.map((v, i) => ({ v, i })).filter(({ v }) => v > 0);
        expect(used.length).toBe(timelineCount); // 1200 draws touch every timeline
        const info = s.fileInfo(fence);
        expect(info?.numFences).toBe(used.length);
        expect(info?.leaves.every((l) => l.status === FENCE_STATUS_ACTIVE && l.driver_name === 'sw_sync')).toBe(true);

        // A worker blocks on the merged fence; stage[0] tells it how far the triggering below had got.
        const stage = new Int32Array(new SharedArrayBuffer(8));
        const merged = s.fenceOf(fence);
        const waiter = spawn({
          role: 'merge-waiter',
          sab: s.k.fences.sab,
          shared: stage.buffer as SharedArrayBuffer,
          fence: merged,
        });
        let wokeEarly = false;
        waiter.done.then(
          () => {
            wokeEarly = Atomics.load(stage, 0) < used.length;
          },
          () => {},
        );
        await counterReaches(stage, 1, [waiter], 1);
        for (const [n, { v, i }] of used.entries()) {
          await yieldToLoop();
          expect(wokeEarly).toBe(false);
          const tl = timelines[i] ?? -1;
          expect(s.wait(fence, 0)).toBe(0);
          // One short of the latest point: that timeline's leaf is still pending (the dedup kept the latest).
          expect(s.timelineInc(tl, v - 1)).toBe(0);
          expect(s.countWithStatus(fence, FENCE_STATUS_SIGNALED)).toBe(n);
          expect(s.wait(fence, 0)).toBe(0);
          Atomics.store(stage, 0, n + 1);
          expect(s.timelineInc(tl, 1)).toBe(0);
          expect(s.countWithStatus(fence, FENCE_STATUS_SIGNALED)).toBe(n + 1);
        }
        expect(s.wait(fence, 0)).toBe(1);
        const woke = (await Promise.race([waiter.done, waiter.failed])) as {
          ret: number;
          stage: number;
          signalled: boolean;
        };
        expect(woke).toEqual({ ret: MAX_SCHEDULE_TIMEOUT, stage: used.length, signalled: true }); // woken by the last
        expect(wokeEarly).toBe(false);
        const last = s.fileInfo(fence);
        expect(last?.status).toBe(1);
        s.put(merged);
        s.closeAll();
      },
    );
  });
}
