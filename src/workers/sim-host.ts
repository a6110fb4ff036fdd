/**
 * The deterministic host: every device runs on this one thread; a seeded scheduler decides, at every
 * scheduling point, which device runs next. Same seed, same interleaving, same result.
 *
 * Contract:
 * - A device runs alone from one scheduling point to the next (the context calls another device can
 *   observe; memory accesses are not points, see device.ts). At a point it parks, with an optional
 *   readiness test (a fence signalled, room on a link) and an optional wake time (busy, or a wait's
 *   timeout).
 * - Time is virtual: it advances only when nothing is runnable, to the earliest wake time.
 * - Nothing runnable, nothing asleep, devices still parked: a hang, seen at the step it happens. The
 *   host's recovery hook may end it (a watchdog timing a job out wakes its waiters) and the run goes on;
 *   otherwise every parked device is failed with a HangError naming what it waited for, and the hang is
 *   returned for the report.
 * - The scheduler's choices come from its own PRNG stream of the run's seed; the device models draw from
 *   theirs, so adding a random draw in one model does not reshuffle the schedule.
 */
import { assert } from '../kernel/assert.js';
import { dmaFenceIsSignaled, type FenceHandle, type FenceTable } from '../kernel/dma-fence.js';
import { type DmaResv, dmaResvLockHolder } from '../kernel/dma-resv.js';
import type { Blocking } from './device-runtime.js';
import type { FrameDescriptor, LinkRing } from './link-ring.js';
import type { Prng } from './prng.js';
import { randomPolicy, type SchedulePolicy } from './schedule-policy.js';

/** Scheduler steps one run may take (a bound, like every loop here). */
export const SIM_STEPS_MAX = 20_000_000;

export class HangError extends Error {
  constructor(device: string, op: string) {
    super(`${device} hung in ${op}: nothing else could run`);
    this.name = 'HangError';
  }
}

interface SimTask {
  readonly name: string;
  state: 'new' | 'parked' | 'running' | 'done';
  /** What it waits for; `opText` fills in the numbers, only when a hang report needs the words. */
  op: string;
  opA: number;
  opB: number;
  /**
   * What makes it runnable, as data rather than a closure per park (a step allocates less): READY_NOW, or
   * a condition on `readyObj` (and `readyNum`): a fence signalled, room or a frame on a link, a lock's
   * holder changed, or for READY_FN the test function `park` was given.
   */
  readyKind: number;
  readyObj: unknown;
  readyNum: number;
  wakeAtNs: number;
  resume: (() => void) | null;
  fail: ((e: Error) => void) | null;
  onPark: (() => void) | null;
}

export interface HangReport {
  timeNs: number;
  /** Each stuck device and what it waited for. */
  waiting: { device: string; op: string }[];
  /**
   * A deadlock the wait-for walk proved (worker host): its devices, not every unfinished one, and acted on
   * at once rather than after the watchdog's timeout.
   */
  proven?: boolean;
}

export class SimScheduler {
  clockNs = 0;
  steps = 0;
  private readonly prng: Prng;
  private readonly policy: SchedulePolicy;
  private readonly tasks = new Map<string, SimTask>();
  private all: SimTask[] = [];
  private readonly ready: SimTask[] = [];
  /**
   * Set once every device has reached its first point: from then on the device that parks (or finishes)
   * picks the next one itself, synchronously. The scheduler never awaits a device, so a step costs one
   * promise (the parked device's) and one microtask hop instead of three promises and several hops.
   */
  private stepping: { resolve: (r: HangReport | null) => void; reject: (e: unknown) => void } | null = null;
  /** After a hang: the stuck devices still to be failed, in order, and the report to return after them. */
  private failing: SimTask[] | null = null;
  private hang: HangReport | null = null;
  private recover: ((hang: HangReport) => boolean) | null = null;

  /** `policy` picks who runs at each step, drawing from `prng` (default: uniform over the ready devices). */
  constructor(prng: Prng, policy: SchedulePolicy = randomPolicy) {
    this.prng = prng;
    this.policy = policy;
  }

  /**
   * At a hang, before anything is failed: `recover` returns true when it made a parked device runnable
   * (it must, or the scheduler would ask again forever), false to let the hang end the run.
   */
  onHang(recover: (hang: HangReport) => boolean): void {
    this.recover = recover;
  }

  /** Register a device before `run`. */
  add(name: string): void {
    assert(!this.tasks.has(name), `sim task ${name} added twice`);
    this.tasks.set(name, {
      name,
      state: 'new',
      op: 'start',
      opA: 0,
      opB: 0,
      readyKind: READY_NOW,
      readyObj: null,
      readyNum: 0,
      wakeAtNs: 0,
      resume: null,
      fail: null,
      onPark: null,
    });
  }

  private task(name: string): SimTask {
    const t = this.tasks.get(name);
    // Messages are built only on failure: these checks run at every step.
    if (t === undefined) assert(false, `unknown sim task ${name}`);
    return t;
  }

  /** A device parks until the scheduler picks it (and `ready` holds, or `wakeAtNs` has come). */
  park(name: string, op: string, ready: (() => boolean) | null = null, wakeAtNs = Number.NaN): Promise<void> {
    return this.parkTask(this.task(name), op, 0, 0, ready === null ? READY_NOW : READY_FN, ready, 0, wakeAtNs);
  }

  private parkTask(
    t: SimTask,
    op: string,
    opA: number,
    opB: number,
    readyKind: number,
    readyObj: unknown,
    readyNum: number,
    wakeAtNs: number,
  ): Promise<void> {
    if (t.state !== 'running' && t.state !== 'new') assert(false, `${t.name} parked while ${t.state}`);
    t.state = 'parked';
    t.op = op;
    t.opA = opA;
    t.opB = opB;
    t.readyKind = readyKind;
    t.readyObj = readyObj;
    t.readyNum = readyNum;
    t.wakeAtNs = wakeAtNs;
    const parked = new Promise<void>((resolve, reject) => {
      t.resume = resolve;
      t.fail = reject;
    });
    this.yielded(t);
    return parked;
  }

  /** The device's body finished (normally or not). */
  finish(name: string): void {
    const t = this.task(name);
    t.state = 'done';
    this.yielded(t);
  }

  /** The running device gave the thread back: start-up waits for it, a step picks the next device. */
  private yielded(t: SimTask): void {
    const notify = t.onPark;
    t.onPark = null;
    if (notify !== null) notify();
    else if (this.stepping !== null) this.dispatch();
  }

  private runnable(t: SimTask): boolean {
    if (t.state !== 'parked') return false;
    if (!Number.isNaN(t.wakeAtNs) && t.wakeAtNs <= this.clockNs) return true;
    switch (t.readyKind) {
      case READY_NOW:
        return Number.isNaN(t.wakeAtNs);
      case READY_FENCE:
        return dmaFenceIsSignaled(t.readyObj as FenceTable, t.readyNum);
      case READY_PUSH:
        return (t.readyObj as LinkRing).canPush();
      case READY_POP:
        return (t.readyObj as LinkRing).canPop();
      case READY_LOCK:
        return dmaResvLockHolder(t.readyObj as DmaResv) !== t.readyNum;
      default:
        return (t.readyObj as () => boolean)();
    }
  }

  /**
   * Run every device to completion. `start(name)` launches a device body; the body's first context call
   * parks it. Returns a hang report, or null when every device finished.
   */
  async run(start: (name: string) => void): Promise<HangReport | null> {
    for (const t of this.tasks.values()) {
      const parked = new Promise<void>((r) => {
        t.onPark = r;
      });
      t.state = 'running';
      start(t.name);
      await parked;
    }
    this.all = [...this.tasks.values()];
    return new Promise<HangReport | null>((resolve, reject) => {
      this.stepping = { resolve, reject };
      this.dispatch();
    });
  }

  /** Resume the next device, or settle the run; called with no device running. */
  private dispatch(): void {
    const run = this.stepping;
    if (run === null) return;
    try {
      const next = this.failing === null ? this.pick() : this.failing.shift();
      if (next !== undefined && next !== null) {
        this.resumeWith(next, this.failing === null ? null : new HangError(next.name, opText(next)));
        return;
      }
      if (this.failing === null) {
        const stuck = this.all.filter((t) => t.state === 'parked');
        if (stuck.length > 0) {
          const hang = { timeNs: this.clockNs, waiting: stuck.map((t) => ({ device: t.name, op: opText(t) })) };
          if (this.recover?.(hang)) {
            if (!stuck.some((t) => this.runnable(t))) assert(false, 'hang recovery woke nobody');
            this.dispatch();
            return;
          }
          this.hang = hang;
          this.failing = stuck;
          this.dispatch();
          return;
        }
      }
      this.stepping = null;
      run.resolve(this.hang);
    } catch (e) {
      this.stepping = null;
      run.reject(e);
    }
  }

  /** The device to run next, advancing virtual time when nothing is ready; null when none can ever run. */
  private pick(): SimTask | null {
    const ready = this.ready;
    for (;;) {
      if (this.steps >= SIM_STEPS_MAX) assert(false, `sim run exceeded ${SIM_STEPS_MAX} steps`);
      // One pass, no allocation: this loop runs once per scheduling step.
      ready.length = 0;
      let wakeAt = Number.POSITIVE_INFINITY;
      for (const t of this.all) {
        if (t.state !== 'parked') continue;
        if (this.runnable(t)) ready.push(t);
        else if (!Number.isNaN(t.wakeAtNs) && t.wakeAtNs < wakeAt) wakeAt = t.wakeAtNs;
      }
      if (ready.length === 0) {
        if (wakeAt === Number.POSITIVE_INFINITY) return null;
        this.clockNs = Math.max(this.clockNs, wakeAt);
        continue;
      }
      const pick = ready[this.policy.pick(ready, this.prng)] as SimTask;
      this.steps++;
      return pick;
    }
  }

  /** `Blocking` for device `name` (registered with `add`): every wait is a park. */
  blocking(name: string): Blocking {
    const t = this.task(name);
    return {
      nowNs: () => this.clockNs,
      point: (op) => this.parkTask(t, op, 0, 0, READY_NOW, null, 0, Number.NaN),
      busy: (ns) => this.parkTask(t, 'busy', 0, 0, READY_NOW, null, 0, this.clockNs + Math.max(0, ns)),
      waitFence: async (table: FenceTable, f: FenceHandle, timeoutNs: number): Promise<number> => {
        const start = this.clockNs;
        const deadline = Number.isFinite(timeoutNs) ? start + timeoutNs : Number.NaN;
        await this.parkTask(t, OP_WAIT_FENCE, table.contextOf(f), table.seqnoOf(f), READY_FENCE, table, f, deadline);
        if (!dmaFenceIsSignaled(table, f)) return 0;
        return Number.isFinite(timeoutNs) ? Math.max(1, timeoutNs - (this.clockNs - start)) : Number.POSITIVE_INFINITY;
      },
      push: async (ring: LinkRing, d: FrameDescriptor): Promise<boolean> => {
        await this.parkTask(t, 'send (link full)', 0, 0, READY_PUSH, ring, 0, Number.NaN);
        const r = ring.tryPush(d);
        if (r === 'full') assert(false, 'sim push after canPush');
        return r === 'pushed';
      },
      // A resv lock held by another device: park until its holder changes (never sleep the one thread).
      waitLock: (obj: DmaResv, holder: number, bufferId: number) =>
        this.parkTask(t, OP_LOCK_RESV, bufferId, 0, READY_LOCK, obj, holder, Number.NaN),
      deliverPending: () => {},
      pop: async (ring: LinkRing): Promise<FrameDescriptor | null> => {
        await this.parkTask(t, 'recv (link empty)', 0, 0, READY_POP, ring, 0, Number.NaN);
        return ring.tryPop();
      },
    };
  }

  private resumeWith(t: SimTask, error: Error | null): void {
    t.state = 'running';
    const resume = t.resume;
    const fail = t.fail;
    t.resume = null;
    t.fail = null;
    if (error) fail?.(error);
    else resume?.();
  }
}

/** The sim host's way for a device to wait: park in the scheduler. */
export function simBlocking(sched: SimScheduler, name: string): Blocking {
  return sched.blocking(name);
}

/** The words of what a task waits for (numbers kept apart at park time so a step formats nothing). */
function opText(t: SimTask): string {
  if (t.op === OP_WAIT_FENCE) return `wait fence ${t.opA}:${t.opB}`;
  if (t.op === OP_LOCK_RESV) return `lock buffer ${t.opA}`;
  return t.op;
}
/** What makes a parked task runnable (besides its wake time): `SimTask.readyKind`. */
const READY_NOW = 0;
const READY_FN = 1;
const READY_FENCE = 2;
const READY_PUSH = 3;
const READY_POP = 4;
const READY_LOCK = 5;

/** Markers no `point(op)` name can equal (a NUL first), compared by identity of content. */
const OP_WAIT_FENCE = '\0wait fence';
const OP_LOCK_RESV = '\0lock resv';
