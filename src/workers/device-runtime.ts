/**
 * The one implementation of `DeviceContext`. Both hosts build it from the same shared memory (arenas,
 * fence table, resv table, mapping table, link rings) and differ only in two injected parts:
 * - `Blocking`: how a device waits — the sim host parks it in its scheduler, the worker host sleeps on
 *   Atomics — and what time it is;
 * - `ControlPlane`: how it reaches the kernel for allocation, attach and map — a direct call on the sim
 *   host, comlink from a worker.
 * Everything else — bytes through mappings, fences, resv, links, and the checks on them — is this file,
 * so the same checkers run on both hosts.
 */

import { HbClock, type HbRace, type HbShared, type HbSite } from '../detect/hb.js';
import { describeRace } from '../detect/race-report.js';
import {
  type CpuAccessFlags,
  CpuBrackets,
  coveringUsage,
  type ResvSeen,
  ResvUsageCheck,
  resvSnapshot,
  type SyncMisuse,
} from '../detect/sync-rules.js';
import {
  HELD_LOCKS_MAX,
  WAIT_FENCE,
  WAIT_LOCK,
  WAIT_RECV,
  WAIT_SEND,
  WaitForAgent,
  type WaitForShared,
  type WaitKind,
  type WaitStep,
} from '../detect/wait-for.js';
import { Checksum, checksumBytes, checksumOfFills, fillBytes } from '../devices/checksum.js';
import type {
  AcquireCtx,
  AttachmentRef,
  BufferRef,
  CpuMapping,
  DeviceContext,
  FenceCallback,
  Frame,
  Mapping,
} from '../devices/device.js';
import { assert } from '../kernel/assert.js';
import type { CpuCache } from '../kernel/cpu-cache.js';
import {
  DMA_FENCE_FLAG_USER_BITS,
  dmaFenceGet,
  dmaFenceGetStatus,
  dmaFenceInit,
  dmaFencePut,
  dmaFenceSetError,
  dmaFenceSignal,
  FENCE_COUNT_MAX_LIMIT as FENCE_SLOT_SPAN,
  type FenceHandle,
  type FenceTable,
  registerFenceOps,
} from '../kernel/dma-fence.js';
import {
  DmaResv,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvGetFences,
  dmaResvLockCooperativeRetry,
  dmaResvLockCooperativeTry,
  dmaResvLockHolder,
  dmaResvReserveFences,
  dmaResvUnlock,
  type ResvTable,
  type WwAcquireCtx,
  wwAcquireDone,
  wwAcquireFini,
  wwAcquireInit,
} from '../kernel/dma-resv.js';
import { EAGAIN, EALREADY, EINVAL, EMFILE, ENOENT, ENOMEM, type Errno, errnoName, isErr } from '../kernel/errno.js';
import type { Task } from '../kernel/kernel-core.js';
import type { Arena } from '../kernel/memory.js';
import type { WarningDetail } from '../kernel/trace.js';
import { PAGE_SIZE } from '../kernel/uapi.js';
import { MAP_DEAD, MAP_INVALIDATED, type MappingInfo, mappingState } from './device-service.js';
import type { FenceLedger } from './fence-ledger.js';
import type { FrameDescriptor, LinkRing } from './link-ring.js';
import type { Prng } from './prng.js';
import { OPS, type Op } from './protocol.js';

/** Device fences: driver "dmafarm", timeline = the device's name (aux holds the device index). */
const deviceNames: string[] = [];
export function setDeviceNames(names: readonly string[]): void {
  deviceNames.length = 0;
  deviceNames.push(...names);
}
/**
 * A driver-private fence flag (DMA_FENCE_FLAG_USER_BITS, include/linux/dma-fence.h): the farm's watchdog
 * failed this job with -ETIME, as drm_sched's timeout handler and a GPU reset do. The device's own late
 * signal of it is then a no-op, not a double signal: the reset signalled it, not a bug.
 */
export const FENCE_TIMED_OUT_BIT = DMA_FENCE_FLAG_USER_BITS;

export const deviceFenceOps = registerFenceOps('dmafarm-device', {
  getDriverName: () => 'dmafarm',
  getTimelineName: (t, f) => deviceNames[t.auxOf(f)] ?? 'device',
});

export interface Blocking {
  nowNs(): number;
  /** A scheduling point with no waiting (sim: maybe someone else runs now). */
  point(op: string): Promise<void>;
  busy(ns: number): Promise<void>;
  /** > 0 once signalled, 0 on timeout. */
  waitFence(t: FenceTable, f: FenceHandle, timeoutNs: number): Promise<number>;
  /** Waits for room; false when the frame was dropped because the consumer is gone. */
  push(ring: LinkRing, d: FrameDescriptor): Promise<boolean>;
  pop(ring: LinkRing): Promise<FrameDescriptor | null>;
  /** Until the holder of the resv lock may have changed from `holder` (see dmaResvLockCooperativeTry). */
  waitLock(obj: DmaResv, holder: number, bufferId: number): Promise<void>;
  /**
   * Run the move_notify handlers of messages already sent to this device (worker: queued on its port,
   * which a device busy in Atomics waits may not read for a long time; sim: none, delivery is synchronous).
   */
  deliverPending(): void;
}

export interface ControlPlane {
  allocate(heap: string, sizeBytes: number): Promise<BufferRef | number>;
  release(id: number): Promise<number>;
  attach(id: number, dynamic: boolean): Promise<AttachmentRef | number>;
  detach(attId: number): Promise<number>;
  map(attId: number, dir: number): Promise<MappingInfo | number>;
  unmap(mapId: number): Promise<number>;
  evict(id: number): Promise<number>;
  cpuPages(id: number): Promise<{ runs: { pfn: number; pageCount: number }[]; cached: boolean } | number>;
  cpuAccess(id: number, begin: boolean, dir: number): Promise<number>;
  bufferRef(id: number): Promise<BufferRef | number>;
  resvIndexOf(id: number): Promise<number>;
  misuse(rule: string, message: string, objects?: Record<string, string | number>, detail?: WarningDetail): void;
  /** A lock-order / cross-release edge for the run's lockdep graph (sent once per distinct edge). */
  lockdep(from: string, to: string, op: string): void;
}

export interface RuntimeShared {
  arenas: readonly Pick<Arena, 'name' | 'basePfn' | 'pageCount' | 'bytes'>[];
  fences: FenceTable;
  resvs: ResvTable;
  /** The one CPU cache: device CPU access goes through it, like the kernel's. */
  cache: CpuCache;
  mappingWords: Int32Array;
  /** Rings by port name ('out', 'in0', ...), as this device sees them. */
  ports: ReadonlyMap<string, LinkRing>;
  /** The device's fence references (FenceLedger.create() on the sim host; the host's SAB in a worker). */
  ledger: FenceLedger;
  /** The happens-before race detector's shared state, or null when detection is off. */
  hb: HbShared | null;
  /** What every device is blocked on (always kept: hang reports need it too). */
  waitFor: WaitForShared;
  /** The device's kernel task: it owns the resv locks the device takes. */
  task: Task;
}

/**
 * A device is gone: every fence it created and never signalled is signalled with `error`, so nobody
 * waits for it forever, and every reference it held is dropped. Returns how many were still pending (a
 * fence leak when the device finished normally). The ledger is shared memory: a host can do this for a
 * worker it terminated.
 */
export function abandonLedger(t: FenceTable, ledger: FenceLedger, error: number): number {
  let pending = 0;
  for (const { fence, refs, own } of ledger.entries()) {
    if (!t.isLive(fence)) continue;
    if (own && dmaFenceGetStatus(t, fence) === 0) {
      pending++;
      dmaFenceSetError(t, fence, error);
      dmaFenceSignal(t, fence);
    }
    for (let i = 0; i < refs; i++) dmaFencePut(t, fence);
  }
  ledger.clear();
  return pending;
}

/**
 * Whether a published wait still blocks, checked now: the fence is unsignalled, the lock still held by the
 * device named. Link waits are never believed (their peer's progress ends them). What makes a chain of
 * possibly stale words a proven cycle (wait-for.ts).
 */
export function stillBlocks(t: FenceTable, waitFor: WaitForShared, devices: number): (st: WaitStep) => boolean {
  return (st) => {
    if (st.kind === WAIT_FENCE) {
      const f = st.b * FENCE_SLOT_SPAN + st.a;
      return t.isLive(f) && dmaFenceGetStatus(t, f) === 0;
    }
    if (st.kind === WAIT_LOCK) return waitFor.holderOf(st.a, devices) === st.peer;
    return false;
  };
}

/** The rules of a proven deadlock found by the block-time walk. */
export const DEADLOCK_RULES: ReadonlySet<string> = new Set([
  'fence-wait-cycle',
  'fence-lock-wait-cycle',
  'resv-lock-deadlock',
]);

/** How to break each kind of wait-for cycle. */
export const CYCLE_HINTS = {
  'ww-no-ctx-abba':
    'lock several resvs with one ww_acquire_ctx (dma_resv_lock with a ticket; on -EDEADLK unlock all, lock_slow the contended one, retry), or always in one global order',
  'resv-lock-deadlock':
    'with tickets, back off on -EDEADLK (unlock everything the ticket holds, lock_slow the contended buffer, then the rest); without, lock several resvs with one ww_acquire_ctx or in one global order',
  'fence-lock-wait-cycle':
    'a lock held across a fence wait must never be needed to signal that fence: drop it before waiting, or take it before publishing your fences',
  'fence-wait-cycle':
    'fence dependencies must form a DAG: a job may only wait on fences of work submitted before it, never on a fence that waits for it',
} as const;

/** One step of a wait-for chain in words ("disp0 waits for cam0#4 (cam0 signals it)"). */
export function describeWait(st: WaitStep, names: readonly string[] = deviceNames): string {
  const who = names[st.device] ?? `device${st.device}`;
  const peer = st.peer >= 0 ? (names[st.peer] ?? `device${st.peer}`) : 'nobody known';
  switch (st.kind) {
    case WAIT_FENCE:
      return st.peer >= 0 ? `${who} waits for ${peer}#${st.d}` : `${who} waits for fence ${st.c}:${st.d}`;
    case WAIT_LOCK:
      return `${who} waits for the resv lock of buffer ${st.a} (held by ${peer})`;
    case WAIT_SEND:
      return `${who} waits for room on its link to ${peer}`;
    case WAIT_RECV:
      return `${who} waits for a frame from ${peer}`;
    default:
      return `${who} runs`;
  }
}

/** `spans` for an access a protected buffer's firewall answers without memory (reported at the attach). */
const FIREWALLED = Symbol('firewalled');
type Firewalled = typeof FIREWALLED;

/** Distinct access ranges remembered per mapping (`DeviceRuntime.spanMemos`), replaced round-robin. */
export const SPAN_MEMO_ENTRIES_MAX = 8;
interface SpanMemo {
  offsets: number[];
  lengths: number[];
  spans: Uint8Array[][];
  next: number;
}

/** A device-level failure of a kernel call the model did not expect to fail. */
export class DeviceCallError extends Error {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super(`${what} failed: ${errnoName(errno)}`);
    this.errno = errno;
  }
}

/**
 * What the runtime records per operation, without building strings: the operation's code (`OPS` in
 * protocol.ts) and up to three numbers (buffer, offset, length; context, seqno; ...).
 */
export type RecordEvent = (timeNs: number, op: number, a: number, b: number, c: number) => void;
const OP_CODES: ReadonlyMap<string, number> = new Map(OPS.map((o, i) => [o, i]));

/** FNV-style mixing of one number into an event hash (both 32-bit halves: ns times exceed 2^32). */
export function mixEvent(h: number, x: number): number {
  const lo = Math.imul(h ^ (x | 0), 0x01000193);
  return Math.imul(lo ^ ((x / 4294967296) | 0), 0x01000193);
}

export class DeviceRuntime implements DeviceContext {
  readonly name: string;
  readonly model: string;
  readonly prng: Prng;
  private readonly index: number;
  private readonly block: Blocking;
  private readonly cp: ControlPlane;
  private readonly shared: RuntimeShared;
  private readonly logFn: (m: string, f?: Record<string, unknown>) => void;
  private readonly record: RecordEvent;
  private context = 0;
  private seqno = 0;
  private readonly mappings = new Map<number, MappingInfo>();
  /**
   * Per live mapping, the spans of its last SPAN_MEMO_ENTRIES_MAX distinct accesses (devices touch the same
   * few ranges of a buffer every frame): the arena views need not be walked and cut again. A mapping's sg
   * entries and the arenas never change while it lives, so an entry stays right until it is unmapped.
   */
  private readonly spanMemos = new Map<number, SpanMemo>();
  private readonly hbSite: HbSite = { op: 0, job: 0, timeNs: 0, waitedCtx: 0, waitedSeqno: 0 };
  private readonly moveHandlers: ((att: AttachmentRef) => void)[] = [];
  private readonly resvCache = new Map<number, DmaResv>();
  private readonly bufferRefs = new Map<number, BufferRef>();
  /** Its fences not yet signalled, on each of which it holds the signaller's reference (`createFence`). */
  private readonly signallerRefs = new Set<number>();
  /** Its dynamic attachments: the ones move_notify can come for. */
  private readonly dynamicAttachments = new Set<number>();
  private readonly cpuMaps = new Map<
    number,
    { buf: BufferRef; runs: { pfn: number; pageCount: number }[]; cached: boolean }
  >();
  private nextCpuMap = 1;
  /**
   * The fence references this device holds — the ones it created (it owes each a signal and a put) and
   * the ones received with frames (a put) — in shared memory, so a host can drop them after killing it.
   */
  private readonly ledger: FenceLedger;
  /** This device's vector clock (null: race detection off). */
  private readonly hb: HbClock | null;
  /** Buffer id → its resv slot, the index of its HB shadow (filled at allocate, map and cpuMap). */
  private readonly bufferSlots = new Map<number, number>();
  /** Frames received but not yet acknowledged to their link: buffer id → the port it came from. */
  private readonly unacked = new Map<number, string>();
  /** The last fence this device waited for: its timeline's device index + 1 (0: none) and seqno. */
  private waitedDevice = 0;
  private waitedSeqno = 0;
  /** Open DMA_BUF_IOCTL_SYNC brackets of this device's CPU (the kernel keeps none; the detector does). */
  private readonly cpuBrackets = new CpuBrackets();
  /** The fences this device added to resvs and its writes: a write fence added as READ. */
  private readonly usageCheck: ResvUsageCheck;
  /** Buffer id → the device fences its resv held when this device last waited on it (implicit sync). */
  private readonly resvSeen = new Map<number, { usage: DmaResvUsage; fences: ResvSeen[] }>();
  /** This device's words in the wait-for table. */
  private readonly waits: WaitForAgent;
  /** The highest seqno this device signalled on its own timeline. */
  private signalledSeqnoMax = 0;
  /**
   * Own fences published (added to a resv, or sent) and not yet signalled: while any is, the device is
   * on the signalling path of its timeline (the kernel's contract starts the section at publication).
   */
  private readonly ownPublished = new Set<number>();
  /** Nesting depth of begin/end_signalling. */
  private signallingDepth = 0;
  /** Resv locks held through `lock`: buffer → its acquire context (null: none). */
  private readonly heldLocks = new Map<number, WwAcquireCtx | null>();
  /** Buffers a `lock` answered -EALREADY for while held: unlocking one twice is the ignored -EALREADY. */
  private readonly alreadyAnswered = new Set<number>();
  private readonly acquireCtxs = new Map<number, WwAcquireCtx>();
  /** Lockdep edges this device already sent (each is sent once). */
  private readonly lockdepSent = new Set<string>();
  /** Buffers whose `signal:<me> → resv:<buffer>` edge was sent (`lockdepSent` without building its key). */
  private readonly signalEdgesSent = new Set<number>();
  /** `acquired`, bound once: a wait on a resv passes it for every fence it sees signalled. */
  private readonly acquiredFn = (f: number): void => this.acquired(f);
  /** The device index that signals a fence (its timeline's owner), -1 for fences no device signals. */
  private readonly signallerOf = (f: number): number => {
    const t = this.shared.fences;
    return t.opsIdOf(f) === deviceFenceOps ? t.auxOf(f) : -1;
  };
  /**
   * A wait that did not give what it guards: it timed out (0), or the fence completed with an error. Any
   * access to buffer memory before the device looks (`status`) or waits again is the misread.
   */
  private unsafeWait: { rule: 'fence-timeout-misread' | 'fence-error-ignored'; fence: string; error: number } | null =
    null;

  constructor(opts: {
    name: string;
    model: string;
    index: number;
    prng: Prng;
    blocking: Blocking;
    control: ControlPlane;
    shared: RuntimeShared;
    log: (m: string, f?: Record<string, unknown>) => void;
    record: RecordEvent;
    /** The device's fence timeline, allocated by the host so the kernel can find its fences. */
    fenceContext: number;
  }) {
    this.name = opts.name;
    this.model = opts.model;
    this.index = opts.index;
    this.prng = opts.prng;
    this.block = opts.blocking;
    this.cp = opts.control;
    this.shared = opts.shared;
    this.logFn = opts.log;
    this.record = opts.record;
    this.context = opts.fenceContext;
    this.ledger = opts.shared.ledger;
    this.hb = opts.shared.hb === null ? null : new HbClock(opts.shared.hb, opts.index);
    this.usageCheck = new ResvUsageCheck(
      opts.shared.fences,
      opts.fenceContext,
      (f) => `${this.name}#${opts.shared.fences.seqnoOf(f)}`,
    );
    this.waits = new WaitForAgent(opts.shared.waitFor, opts.index);
  }

  private ev(op: Op, a = 0, b = 0, c = 0): void {
    this.record(this.block.nowNs(), OP_CODES.get(op) ?? 0, a, b, c);
  }

  nowNs(): number {
    return this.block.nowNs();
  }
  log(message: string, fields?: Record<string, unknown>): void {
    this.logFn(message, fields);
  }
  async busy(ns: number): Promise<void> {
    this.ev('busy', ns);
    await this.block.busy(ns);
  }

  private must<T>(what: string, r: T | number): T {
    if (typeof r === 'number' && isErr(r)) throw new DeviceCallError(what, r);
    return r as T;
  }

  // --- control plane ---
  async allocate(heap: string, sizeBytes: number): Promise<BufferRef> {
    if (this.signallingDepth > 0) this.signalPathCheck(`allocated ${sizeBytes} bytes`);
    await this.block.point('allocate');
    const r = this.must(`allocate ${sizeBytes} bytes from ${heap}`, await this.cp.allocate(heap, sizeBytes));
    this.bufferRefs.set(r.id, r); // its own buffer coming back on a link needs no kernel call
    this.ev('allocate', r.id, sizeBytes);
    // A new buffer may reuse a freed buffer's resv slot: its shadow starts empty (nobody else knows it yet).
    if (this.hb !== null) this.hb.bufferCreated(await this.slotOf(r.id), r.sizeBytes);
    return r;
  }
  async release(buf: BufferRef): Promise<void> {
    await this.block.point('release');
    this.ev('release', buf.id);
    await this.cp.release(buf.id);
  }
  async attach(buf: BufferRef, opts: { dynamic?: boolean } = {}): Promise<AttachmentRef> {
    await this.block.point('attach');
    const r = this.must(
      `attach buffer ${buf.id}`,
      await this.lockedCall(buf.id, () => this.cp.attach(buf.id, opts.dynamic ?? false)),
    );
    this.ev('attach', buf.id, r.id);
    if (r.dynamic) this.dynamicAttachments.add(r.id);
    return r;
  }
  async detach(att: AttachmentRef): Promise<void> {
    await this.block.point('detach');
    this.ev('detach', att.id);
    this.dynamicAttachments.delete(att.id);
    for (const [id, m] of this.mappings) {
      if (m.attachmentId !== att.id) continue;
      this.mappings.delete(id);
      this.spanMemos.delete(id);
    }
    await this.lockedCall(att.bufferId, () => this.cp.detach(att.id));
  }
  async map(att: AttachmentRef, dir = 0): Promise<Mapping> {
    await this.block.point('map');
    const info = this.must(
      `map attachment ${att.id}`,
      await this.lockedCall(att.bufferId, () => this.cp.map(att.id, dir)),
    );
    this.mappings.set(info.id, info);
    if (this.hb !== null) await this.slotOf(info.bufferId);
    this.ev('map', att.id, info.id);
    return { id: info.id, attachmentId: att.id, bufferId: info.bufferId, sizeBytes: info.sizeBytes };
  }
  async unmap(m: Mapping): Promise<void> {
    await this.block.point('unmap');
    this.ev('unmap', m.id);
    this.mappings.delete(m.id);
    this.spanMemos.delete(m.id);
    await this.lockedCall(m.bufferId, () => this.cp.unmap(m.id));
  }
  async evict(buf: BufferRef): Promise<number> {
    await this.block.point('evict');
    this.ev('evict', buf.id);
    return this.lockedCall(buf.id, () => this.cp.evict(buf.id));
  }

  /**
   * A control-plane call that takes a resv lock. -EAGAIN: another device holds it, and the kernel thread
   * does not sleep for a device (device-service.ts), so this device waits for the holder on its own thread
   * — as a driver sleeps in dma_resv_lock, visible in the wait-for table — and calls again.
   */
  private async lockedCall<T>(bufferId: number, call: () => Promise<T | Errno>): Promise<T | Errno> {
    for (;;) {
      const r = await call();
      if (r !== -EAGAIN) return r;
      const obj = await this.resvById(bufferId);
      const holder = dmaResvLockHolder(obj);
      if (holder === 0) continue; // released since (worker host): call again
      this.blocked(WAIT_LOCK, this.shared.waitFor.holderOf(bufferId, deviceNames.length), bufferId);
      this.checkCycle();
      await this.block.waitLock(obj, holder, bufferId);
      this.unblocked();
    }
  }
  onMoveNotify(fn: (att: AttachmentRef) => void): void {
    this.moveHandlers.push(fn);
  }
  /** @internal The host delivers move_notify here. */
  deliverMoveNotify(att: AttachmentRef): void {
    this.ev('move_notify', att.id);
    for (const fn of this.moveHandlers) fn(att);
  }

  // --- CPU access (a driver's vmap), through the non-coherent CPU cache ---
  async cpuMap(buf: BufferRef): Promise<CpuMapping> {
    await this.block.point('cpu-map');
    const v = this.must(`CPU-map buffer ${buf.id}`, await this.cp.cpuPages(buf.id));
    const id = this.nextCpuMap++;
    this.cpuMaps.set(id, { buf, runs: v.runs, cached: v.cached });
    if (this.hb !== null) await this.slotOf(buf.id);
    this.ev('cpu-map', buf.id, id);
    return { id, buffer: buf };
  }

  /** Visit the physical ranges of [offset, offset+len) of a CPU mapping. */
  private cpuWalk(
    cm: CpuMapping,
    offset: number,
    lengthBytes: number,
    fn: (phys: number, at: number, n: number) => void,
  ): boolean {
    const v = this.cpuMaps.get(cm.id);
    if (v === undefined || offset < 0 || lengthBytes < 0 || offset + lengthBytes > v.buf.sizeBytes) {
      this.cp.misuse('cpu-access-out-of-bounds', `CPU access [${offset}, +${lengthBytes}) outside mapping ${cm.id}`, {
        ino: cm.buffer.id,
      });
      return false;
    }
    let skip = offset;
    let done = 0;
    for (const r of v.runs) {
      const runBytes = r.pageCount * PAGE_SIZE;
      if (skip >= runBytes) {
        skip -= runBytes;
        continue;
      }
      const n = Math.min(runBytes - skip, lengthBytes - done);
      fn(r.pfn * PAGE_SIZE + skip, done, n);
      done += n;
      skip = 0;
      if (done === lengthBytes) break;
    }
    return true;
  }

  async cpuWrite(cm: CpuMapping, offset: number, data: Uint8Array): Promise<void> {
    this.ev('cpu-write', cm.buffer.id, offset, data.length);
    const cached = this.cpuMaps.get(cm.id)?.cached ?? true;
    this.syncMisuse(this.cpuBrackets.access(cm.buffer.id, true, 'cpu-write'));
    this.check(cm.buffer.id, offset, data.length, true, 'cpu-write');
    this.cpuWalk(cm, offset, data.length, (phys, at, n) => {
      if (cached) this.shared.cache.write(phys, data.subarray(at, at + n));
      else this.physView(phys, n).set(data.subarray(at, at + n));
    });
  }
  async cpuFill(cm: CpuMapping, offset: number, lengthBytes: number, value: number): Promise<void> {
    // Through the cache in line-sized pieces is what a CPU memset does; one chunk of the value is enough.
    const chunk = new Uint8Array(Math.min(lengthBytes, 1 << 16)).fill(value & 0xff);
    for (let at = 0; at < lengthBytes; at += chunk.length) {
      await this.cpuWrite(cm, offset + at, chunk.subarray(0, Math.min(chunk.length, lengthBytes - at)));
    }
  }
  async cpuRead(cm: CpuMapping, offset: number, lengthBytes: number): Promise<Uint8Array> {
    this.ev('cpu-read', cm.buffer.id, offset, lengthBytes);
    const out = new Uint8Array(lengthBytes);
    const cached = this.cpuMaps.get(cm.id)?.cached ?? true;
    this.syncMisuse(this.cpuBrackets.access(cm.buffer.id, false, 'cpu-read'));
    this.check(cm.buffer.id, offset, lengthBytes, false, 'cpu-read');
    this.cpuWalk(cm, offset, lengthBytes, (phys, at, n) => {
      if (cached) this.shared.cache.read(phys, out.subarray(at, at + n));
      else out.set(this.physView(phys, n), at);
    });
    return out;
  }
  async cpuChecksum(cm: CpuMapping, offset: number, lengthBytes: number): Promise<number> {
    return checksumBytes(await this.cpuRead(cm, offset, lengthBytes));
  }
  /**
   * DMA_BUF_IOCTL_SYNC for the device's CPU: START waits (here, in the device's thread) for the fences a
   * reader or writer must wait for, then the kernel does the cache maintenance; END only the maintenance.
   * The bracket is the detector's bookkeeping (CpuBrackets): the kernel itself keeps no START/END state.
   */
  async cpuSync(buf: BufferRef, phase: 'start' | 'end', access: CpuAccessFlags = 'rw'): Promise<number> {
    const dir = access === 'read' ? 2 : access === 'write' ? 1 : 0;
    if (phase === 'start') await this.waitResv(buf, access === 'read' ? 1 : 2);
    await this.block.point('cpu-sync');
    this.ev('cpu-sync', buf.id, phase === 'start' ? 1 : 0, dir);
    if (phase === 'start') this.cpuBrackets.start(buf.id, access);
    else this.syncMisuse(this.cpuBrackets.end(buf.id, access));
    return this.cp.cpuAccess(buf.id, phase === 'start', dir);
  }

  private syncMisuse(m: SyncMisuse | null): void {
    if (m !== null) this.cp.misuse(m.rule, m.message, m.objects, { site: m.site, hint: m.hint });
  }

  /** A device waits on a buffer's resv (implicit sync): what was there, for classifying a later race. */
  private noteResvWait(bufferId: number, obj: DmaResv, usage: DmaResvUsage): void {
    const hb = this.shared.hb;
    if (hb === null) return;
    const t = this.shared.fences;
    const fences = resvSnapshot(obj, t, hb, this.signallerOf);
    this.resvSeen.set(bufferId, { usage, fences });
  }

  // --- data plane ---
  /**
   * Spans of a mapping's bytes in the arenas, after the shared-table checks: null when the access is refused
   * (reported), FIREWALLED when a protected buffer's firewall answers it without memory.
   */
  private spans(m: Mapping, offset: number, lengthBytes: number, write: boolean): Uint8Array[] | null | Firewalled {
    if (this.unsafeWait !== null) this.reportUnsafeWait(m.bufferId, write);
    const state = mappingState(this.shared.mappingWords, m.id);
    if (state === MAP_DEAD) {
      this.cp.misuse(
        'dma-access-unmapped',
        `${write ? 'wrote' : 'read'} through mapping ${m.id} after it was unmapped`,
        {
          mapping: m.id,
          ino: m.bufferId,
        },
      );
      return null;
    }
    if (state === MAP_INVALIDATED && write) {
      this.cp.misuse('dma-write-after-move-notify', `wrote through mapping ${m.id} after move_notify`, {
        mapping: m.id,
        ino: m.bufferId,
      });
    } else if (state === MAP_INVALIDATED) {
      // The old pages still hold the bytes as they were at the move, until the exporter reuses them.
      this.cp.misuse(
        'dma-read-after-move-notify',
        `read through mapping ${m.id} after move_notify: the bytes of pages the buffer has left`,
        { mapping: m.id, ino: m.bufferId },
      );
    }
    const info = this.mappings.get(m.id);
    if (info === undefined) {
      this.cp.misuse('dma-access-foreign-mapping', `used mapping ${m.id} that is not its own`, { mapping: m.id });
      return null;
    }
    if (offset < 0 || lengthBytes < 0 || offset + lengthBytes > info.sizeBytes) {
      this.cp.misuse(
        'dma-access-out-of-bounds',
        `accessed [${offset}, +${lengthBytes}) of a ${info.sizeBytes}-byte mapping`,
        {
          mapping: m.id,
        },
      );
      return null;
    }
    // A protected buffer's firewall stops the transaction (reported at the attach): reads see zeros, writes
    // are dropped — as a TrustZone address-space controller answers a master it does not admit.
    if (info.firewalled) return FIREWALLED;
    let memo = this.spanMemos.get(m.id);
    if (memo === undefined) {
      memo = { offsets: [], lengths: [], spans: [], next: 0 };
      this.spanMemos.set(m.id, memo);
    }
    for (let i = 0; i < memo.offsets.length; i++) {
      if (memo.offsets[i] === offset && memo.lengths[i] === lengthBytes) return memo.spans[i] as Uint8Array[];
    }
    const out: Uint8Array[] = [];
    let skip = offset;
    let left = lengthBytes;
    for (const e of info.entries) {
      if (left === 0) break;
      if (skip >= e.lengthBytes) {
        skip -= e.lengthBytes;
        continue;
      }
      const n = Math.min(e.lengthBytes - skip, left);
      out.push(this.physView(e.dmaAddress + skip, n));
      left -= n;
      skip = 0;
    }
    const slot = memo.next;
    memo.next = (slot + 1) % SPAN_MEMO_ENTRIES_MAX;
    memo.offsets[slot] = offset;
    memo.lengths[slot] = lengthBytes;
    memo.spans[slot] = out;
    return out;
  }

  private physView(phys: number, n: number): Uint8Array {
    const pfn = Math.floor(phys / PAGE_SIZE);
    for (const a of this.shared.arenas) {
      if (pfn >= a.basePfn && pfn < a.basePfn + a.pageCount) {
        const off = phys - a.basePfn * PAGE_SIZE;
        return a.bytes.subarray(off, off + n);
      }
    }
    assert(false, `DMA address 0x${phys.toString(16)} is in no arena`);
  }

  async write(m: Mapping, offset: number, data: Uint8Array): Promise<void> {
    this.ev('write', m.bufferId, offset, data.length);
    const spans = this.spans(m, offset, data.length, true);
    if (spans === null || spans === FIREWALLED) return;
    this.check(m.bufferId, offset, data.length, true, 'write');
    let at = 0;
    for (const s of spans) {
      s.set(data.subarray(at, at + s.length));
      at += s.length;
    }
  }
  async fill(m: Mapping, offset: number, lengthBytes: number, value: number): Promise<void> {
    this.ev('fill', m.bufferId, offset, lengthBytes);
    const spans = this.spans(m, offset, lengthBytes, true);
    if (spans === null || spans === FIREWALLED) return;
    this.check(m.bufferId, offset, lengthBytes, true, 'fill');
    for (const s of spans) fillBytes(s, value);
  }
  async read(m: Mapping, offset: number, lengthBytes: number): Promise<Uint8Array> {
    this.ev('read', m.bufferId, offset, lengthBytes);
    const out = new Uint8Array(lengthBytes);
    const spans = this.spans(m, offset, lengthBytes, false);
    if (spans === null || spans === FIREWALLED) return out;
    this.check(m.bufferId, offset, lengthBytes, false, 'read');
    let at = 0;
    for (const s of spans) {
      out.set(s, at);
      at += s.length;
    }
    return out;
  }
  async checksum(m: Mapping, offset: number, lengthBytes: number): Promise<number> {
    this.ev('checksum', m.bufferId, offset, lengthBytes);
    const spans = this.spans(m, offset, lengthBytes, false);
    if (spans === null) return 0;
    if (spans === FIREWALLED) return checksumOfFills(lengthBytes, []); // what a firewalled read sees
    this.check(m.bufferId, offset, lengthBytes, false, 'checksum');
    const c = new Checksum();
    for (const s of spans) c.update(s);
    return c.digest();
  }
  async copy(src: Mapping, srcOffset: number, dst: Mapping, dstOffset: number, lengthBytes: number): Promise<void> {
    this.ev('copy', src.bufferId, dst.bufferId, lengthBytes);
    const from = this.spans(src, srcOffset, lengthBytes, false);
    const to = this.spans(dst, dstOffset, lengthBytes, true);
    if (from === null || to === null) return;
    // A firewalled side still leaves the other one accessed: the engine reads zeros, or writes nowhere.
    if (from !== FIREWALLED) this.check(src.bufferId, srcOffset, lengthBytes, false, 'copy');
    if (to === FIREWALLED) return;
    this.check(dst.bufferId, dstOffset, lengthBytes, true, 'copy');
    if (from === FIREWALLED) {
      for (const s of to) s.fill(0);
      return;
    }
    // Walk both scatter lists at once: each piece is the overlap of the current source and target span.
    let i = 0;
    let j = 0;
    let si = 0;
    let sj = 0;
    while (i < from.length && j < to.length) {
      const a = from[i] as Uint8Array;
      const b = to[j] as Uint8Array;
      const n = Math.min(a.length - si, b.length - sj);
      b.set(a.subarray(si, si + n), sj);
      si += n;
      sj += n;
      if (si === a.length) {
        i++;
        si = 0;
      }
      if (sj === b.length) {
        j++;
        sj = 0;
      }
    }
  }

  // --- fences ---
  async createFence(): Promise<number> {
    // Not a scheduling point: a new fence on the device's own timeline is invisible to every other device
    // until it is published (resv, link), and publishing is a point.
    const t = this.shared.fences;
    this.seqno++;
    const f = this.must('create fence', dmaFenceInit(t, deviceFenceOps, this.context, this.seqno, { aux: this.index }));
    this.hold(f, true);
    // The signaller's own reference, as a driver keeps its job's fence until it has signalled it: the device
    // may send its reference away with a frame and signal the fence after its consumer has put it (or after
    // the watchdog failed it and every waiter moved on). Dropped at the first signal.
    dmaFenceGet(t, f);
    this.hold(f, true);
    this.signallerRefs.add(f);
    this.waits.emitted(this.seqno);
    this.hb?.fenceCreated(t.slotIndexOf(f));
    this.ev('fence', this.context, this.seqno);
    return f;
  }
  async signal(fence: number, error?: number): Promise<number> {
    await this.block.point('signal');
    const t = this.shared.fences;
    if (t.isLive(fence) && t.flagsOf(fence) & (1 << FENCE_TIMED_OUT_BIT)) {
      // The watchdog got there first; the job's failure has already been passed on.
      this.ownPublished.delete(fence);
      this.dropSignallerRef(fence);
      if (error !== undefined && error < 0) this.unsafeWait = null;
      this.ev('signal', t.contextOf(fence), t.seqnoOf(fence));
      return -EINVAL;
    }
    if (error !== undefined) dmaFenceSetError(t, fence, error);
    const pending = t.isLive(fence) && dmaFenceGetStatus(t, fence) === 0;
    // Release: everything this device did so far happens-before whatever a waiter does after the fence.
    if (this.hb !== null && pending) this.hb.releaseToFence(t.slotIndexOf(fence));
    if (pending) this.settleOwn(fence);
    const r = dmaFenceSignal(t, fence);
    this.ev('signal', t.contextOf(fence), t.seqnoOf(fence));
    if (r === 0) this.dropSignallerRef(fence);
    if (r === -EINVAL && t.isLive(fence)) {
      this.cp.misuse('fence-double-signal', `signalled fence ${t.contextOf(fence)}:${t.seqnoOf(fence)} twice`, {
        context: t.contextOf(fence),
        seqno: t.seqnoOf(fence),
      });
    }
    // Passing a failure on is what a consumer of a failed fence must do: it has looked.
    if (error !== undefined && error < 0) this.unsafeWait = null;
    return r;
  }

  private dropSignallerRef(fence: number): void {
    if (!this.signallerRefs.delete(fence)) return;
    this.ledger.drop(fence);
    dmaFencePut(this.shared.fences, fence);
  }

  /**
   * One of this device's own fences is about to signal. "All fences on the same context are fully ordered"
   * (dma-fence.c): a seqno below one already signalled completes out of order, and dma_fence_is_later,
   * timeline waits and chains will have taken it for done. Reported when the late one signals — a fence
   * that never signals is a leak or a hang, not an order violation.
   */
  private settleOwn(fence: number): void {
    const t = this.shared.fences;
    if (t.contextOf(fence) !== this.context) return;
    const seqno = t.seqnoOf(fence);
    if (seqno < this.signalledSeqnoMax) {
      this.cp.misuse(
        'fence-seqno-order',
        `signalled ${this.name}#${seqno} after ${this.name}#${this.signalledSeqnoMax} (later on the same timeline)`,
        { context: this.context, seqno, signalledSeqno: this.signalledSeqnoMax },
        {
          site: 'signal',
          hint: `signal ${this.name}'s fences in the order they were created (seqno order): a job that completes early waits for its predecessors, or gets its own timeline`,
        },
      );
    }
    this.signalledSeqnoMax = Math.max(this.signalledSeqnoMax, seqno);
    this.ownPublished.delete(fence);
    this.waits.signalled(seqno);
  }

  async wait(fence: number, timeoutNs = Number.POSITIVE_INFINITY): Promise<number> {
    const t = this.shared.fences;
    this.ev('wait', t.contextOf(fence), t.seqnoOf(fence));
    if (timeoutNs < 0) {
      // dma_fence_wait_timeout: WARN_ON(timeout < 0) and -EINVAL (drivers/dma-buf/dma-fence.c).
      this.cp.misuse('fence-wait-negative-timeout', `waited on ${this.fenceName(fence)} with timeout ${timeoutNs} ns`, {
        timeoutNs,
      });
      return -EINVAL;
    }
    this.beforeWait(fence, Number.isFinite(timeoutNs));
    const r = await this.block.waitFence(t, fence, timeoutNs);
    // Not in a finally: a device failed in this wait (a hang) leaves it published for the hang report.
    this.unblocked();
    this.afterWait(fence, r);
    this.ev('waited', t.contextOf(fence), t.seqnoOf(fence), r);
    return r;
  }
  async addCallback(fence: number): Promise<FenceCallback> {
    await this.block.point('callback');
    const t = this.shared.fences;
    // dma_fence_add_callback (drivers/dma-buf/dma-fence.c): already signalled → -ENOENT, and the
    // callback is not called.
    const ret = t.isLive(fence) && dmaFenceGetStatus(t, fence) === 0 ? 0 : -ENOENT;
    // -ENOENT tells the caller the fence has signalled: what it does next is ordered after the signaller.
    if (ret === -ENOENT && t.isLive(fence)) this.acquired(fence);
    this.ev('callback', t.isLive(fence) ? t.contextOf(fence) : 0, t.isLive(fence) ? t.seqnoOf(fence) : 0, ret);
    return Object.freeze({ fence, ret });
  }
  async waitCallback(cb: FenceCallback): Promise<number> {
    if (cb.ret === -ENOENT) {
      this.cp.misuse(
        'fence-callback-enoent-ignored',
        `waited for a callback on ${this.fenceName(cb.fence)} that dma_fence_add_callback refused with -ENOENT: the fence had signalled already, so the callback never runs (on hardware, a wait forever)`,
        {},
        {
          site: 'wait-callback',
          hint: '-ENOENT from dma_fence_add_callback means "already signalled": run the completion yourself now instead of waiting for the callback',
        },
      );
      return -ENOENT;
    }
    // wait() returns > 0 once signalled: the callback ran (0); 0 and errors pass through.
    return Math.min(await this.wait(cb.fence), 0);
  }
  status(fence: number): number {
    const st = dmaFenceGetStatus(this.shared.fences, fence);
    // The device looked at the outcome: what it does next is its decision, not a misread.
    if (st !== 0) this.unsafeWait = null;
    return st;
  }
  async put(fence: number): Promise<void> {
    // Not a scheduling point: dropping one's own reference changes nothing another device can observe
    // (the resv or the consumer still hold theirs; the last put frees a slot nobody else can name).
    this.ledger.drop(fence);
    dmaFencePut(this.shared.fences, fence);
  }

  private fenceName(fence: number): string {
    const t = this.shared.fences;
    if (!t.isLive(fence)) return `fence ${fence}`;
    if (t.opsIdOf(fence) === deviceFenceOps) return `${deviceNames[t.auxOf(fence)] ?? 'device'}#${t.seqnoOf(fence)}`;
    return `fence ${t.contextOf(fence)}:${t.seqnoOf(fence)}`;
  }

  /**
   * About to wait on `fence`: the checks that need no hang to fire. A wait inside a signalling section
   * (lockdep: dma_fence_map taken for write inside its own read side), locks held across the wait (a
   * lockdep edge to the signaller's timeline), and the block-time wait-for walk.
   */
  private beforeWait(fence: number, timed: boolean): void {
    const t = this.shared.fences;
    if (this.signallingDepth > 0) {
      this.cp.misuse(
        'fence-wait-in-signalling',
        `waited on ${this.fenceName(fence)} inside a fence signalling section`,
        { depth: this.signallingDepth },
        {
          site: 'wait',
          hint: 'a fence signalling path must not wait on fences: another fence may need this one to signal first; wait before dma_fence_begin_signalling',
        },
      );
    }
    if (!t.isLive(fence)) return;
    const device = t.opsIdOf(fence) === deviceFenceOps ? t.auxOf(fence) : -1;
    // Whether or not the fence has signalled yet, as dma_fence_wait_timeout's __dma_fence_might_wait():
    // the order is what could deadlock, not this run's timing.
    if (device >= 0 && device !== this.index) {
      for (const buf of this.heldLocks.keys()) this.lockdepEdge(`resv:${buf}`, `signal:${deviceNames[device]}`, 'wait');
    }
    if (dmaFenceGetStatus(t, fence) !== 0) return;
    const slot = t.slotIndexOf(fence);
    this.blocked(
      WAIT_FENCE,
      device,
      slot,
      (fence - slot) / FENCE_SLOT_SPAN,
      t.contextOf(fence),
      t.seqnoOf(fence),
      timed,
    );
    this.checkCycle();
  }

  /** About to block: say on what (wait-for table) and, for the watchdog, publish the clock so far. */
  private blocked(kind: WaitKind, peer: number, a = 0, b = 0, c = 0, d = 0, timed = false): void {
    this.hb?.park();
    this.waits.block(kind, peer, a, b, c, d, timed);
  }
  private unblocked(): void {
    this.waits.unblock();
    this.hb?.unpark();
  }

  /** The model returned: its clock is final (a fence it never signalled may still be timed out). */
  finished(): void {
    this.hb?.park();
  }

  /** A wait ended with `r`: acquire its clock when it completed; remember a timeout or a failure. */
  private afterWait(fence: number, r: number, errors = true): void {
    const t = this.shared.fences;
    if (r <= 0) {
      this.unsafeWait = { rule: 'fence-timeout-misread', fence: this.fenceName(fence), error: 0 };
      return;
    }
    this.acquired(fence);
    const st = errors && t.isLive(fence) ? dmaFenceGetStatus(t, fence) : 1;
    this.unsafeWait = st < 0 ? { rule: 'fence-error-ignored', fence: this.fenceName(fence), error: st } : null;
  }

  /** One of this device's fences became visible to others (in a resv, or sent on a link). */
  private published(fence: number): void {
    const t = this.shared.fences;
    if (t.isLive(fence) && t.contextOf(fence) === this.context && dmaFenceGetStatus(t, fence) === 0) {
      this.ownPublished.add(fence);
    }
  }

  private lockdepEdge(from: string, to: string, op: string): void {
    const key = `${from}>${to}`;
    if (this.lockdepSent.has(key)) return;
    this.lockdepSent.add(key);
    this.cp.lockdep(from, to, op);
  }

  // --- signalling sections and resv locks ---
  beginSignalling(): number {
    this.signallingDepth++;
    this.ev('signalling', 1, this.signallingDepth);
    return this.signallingDepth;
  }
  endSignalling(cookie: number): void {
    if (cookie !== this.signallingDepth) {
      this.cp.misuse(
        'fence-signalling-unbalanced',
        `dma_fence_end_signalling(${cookie}) does not close the innermost section (depth ${this.signallingDepth})`,
        { cookie, depth: this.signallingDepth },
      );
    }
    this.signallingDepth = Math.max(0, Math.min(this.signallingDepth, cookie) - 1);
    this.ev('signalling', 0, this.signallingDepth);
  }

  private signalPathCheck(what: string): void {
    if (this.signallingDepth === 0) return;
    this.cp.misuse(
      'fence-signal-path-lock',
      `${what} inside a fence signalling section`,
      { depth: this.signallingDepth },
      {
        site: what.split(' ')[0] ?? what,
        hint: 'code needed to signal a fence must not take dma_resv locks (others wait on fences while holding them) nor allocate memory (reclaim may wait on fences): do it before dma_fence_begin_signalling',
      },
    );
  }

  /**
   * dma_resv_lock for this device, parking (sim) or sleeping (worker) while another device holds it. Records
   * the lockdep edges the acquisition makes and, while it blocks, what it waits for.
   */
  private lockResv(
    obj: DmaResv,
    bufferId: number,
    ww: WwAcquireCtx | null,
    slow: boolean,
    op: string,
  ): number | Promise<number> {
    if (this.signallingDepth > 0) this.signalPathCheck(`took the resv lock of buffer ${bufferId}`);
    const r = dmaResvLockCooperativeTry(obj, ww, this.shared.task, slow);
    if (r > 0) return this.lockResvContended(obj, bufferId, ww, slow, op, r);
    if (r === 0) this.lockedResv(obj, bufferId, ww, op);
    return r;
  }

  /** `lockResv` when another device holds the lock: wait for its holder to change, and try again. */
  private async lockResvContended(
    obj: DmaResv,
    bufferId: number,
    ww: WwAcquireCtx | null,
    slow: boolean,
    op: string,
    holder: number,
  ): Promise<number> {
    let r = holder;
    while (r > 0) {
      this.blocked(WAIT_LOCK, this.shared.waitFor.holderOf(bufferId, deviceNames.length), bufferId);
      this.checkCycle();
      await this.block.waitLock(obj, r, bufferId);
      this.unblocked();
      r = dmaResvLockCooperativeRetry(obj, ww, this.shared.task, slow);
    }
    if (r === 0) this.lockedResv(obj, bufferId, ww, op);
    return r;
  }

  /** What taking a resv lock means besides the lock word: HB, move_notify delivery, lockdep. */
  private lockedResv(obj: DmaResv, bufferId: number, ww: WwAcquireCtx | null, op: string): void {
    // Lock release → acquire is a happens-before edge: what the last holder did under it is ordered first.
    this.hb?.acquireResv(obj.index);
    // An exporter moves a buffer and tells its importers under this lock, so a move made before we got it
    // has its message queued by now: deliver it, so a dynamic importer checks its mapping under the lock
    // (as the kernel's importers do) and never writes through one the exporter already invalidated. Only
    // dynamic importers are told of moves; the others need not look.
    if (this.dynamicAttachments.size > 0) this.block.deliverPending();
    for (const [held, heldWith] of this.heldLocks) {
      // Locks taken under one ticket are ordered by Wait-Die, not by the order they were taken in.
      if (ww === null || heldWith !== ww) this.lockdepEdge(`resv:${held}`, `resv:${bufferId}`, op);
    }
    // A fence the watchdog failed is no longer owed, whether or not this device knows it yet.
    const t = this.shared.fences;
    for (const f of this.ownPublished) if (!t.isLive(f) || dmaFenceGetStatus(t, f) !== 0) this.ownPublished.delete(f);
    if (this.ownPublished.size > 0 && !this.signalEdgesSent.has(bufferId)) {
      this.signalEdgesSent.add(bufferId);
      this.lockdepEdge(`signal:${this.name}`, `resv:${bufferId}`, op);
    }
  }

  acquireInit(): AcquireCtx {
    const ww = wwAcquireInit(this.shared.resvs, this.shared.task);
    this.acquireCtxs.set(ww.stamp, ww);
    return { stamp: ww.stamp };
  }
  /** The device's live context for `acq`; undefined (reported) for one it never made or already finished. */
  private ww(acq: AcquireCtx | null): WwAcquireCtx | null | undefined {
    if (acq === null) return null;
    const ww = this.acquireCtxs.get(acq.stamp);
    if (ww === undefined) {
      this.cp.misuse(
        'ww-acquire-ctx-unknown',
        `used acquire context ${acq.stamp}, which it did not create or already finished (ww_acquire_fini)`,
        { stamp: acq.stamp },
        { site: 'acquire-ctx', hint: 'use a ticket between its ww_acquire_init and ww_acquire_fini only' },
      );
    }
    return ww;
  }
  async lock(buf: BufferRef, acq: AcquireCtx | null): Promise<number> {
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('lock');
    const ww = this.ww(acq);
    if (ww === undefined) return -EINVAL;
    const r = await this.lockResv(obj, buf.id, ww, false, 'lock');
    this.ev('lock', buf.id, r);
    if (r === 0) this.noteLocked(buf.id, ww);
    if (r === -EALREADY) this.alreadyAnswered.add(buf.id);
    return r;
  }
  async lockSlow(buf: BufferRef, acq: AcquireCtx): Promise<number> {
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('lock');
    const ww = this.ww(acq);
    if (ww === undefined) return -EINVAL;
    const r = await this.lockResv(obj, buf.id, ww, true, 'lock-slow');
    this.ev('lock', buf.id, r);
    if (r === 0) this.noteLocked(buf.id, ww);
    return r;
  }
  private noteLocked(bufferId: number, ww: WwAcquireCtx | null): void {
    if (!this.waits.holdLock(bufferId)) {
      throw new DeviceCallError(`hold more than ${HELD_LOCKS_MAX} resv locks at once`, -ENOMEM);
    }
    this.heldLocks.set(bufferId, ww);
  }
  async unlock(buf: BufferRef): Promise<void> {
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('unlock');
    this.ev('unlock', buf.id);
    if (!this.heldLocks.has(buf.id) && this.alreadyAnswered.has(buf.id)) {
      // The kernel would see an unlock of an unlocked (or someone else's) mutex; the cause is earlier.
      this.alreadyAnswered.delete(buf.id);
      this.cp.misuse(
        'ww-ealready-ignored',
        `unlocked buffer ${buf.id} a second time: dma_resv_lock returned -EALREADY for it (it was already held in this acquire context), and that was taken for a new lock`,
        { ino: buf.id },
        {
          site: 'unlock',
          hint: '-EALREADY means the buffer is on the job list twice: skip the duplicate and do not unlock it twice',
        },
      );
      return;
    }
    // Only the holder's own unlock releases its clock: the resv clock is touched under the lock alone.
    if (this.heldLocks.delete(buf.id)) this.hb?.releaseResv(obj.index);
    this.waits.dropLock(buf.id);
    dmaResvUnlock(obj);
  }
  acquireDone(acq: AcquireCtx): void {
    const ww = this.ww(acq);
    if (ww) wwAcquireDone(ww);
  }
  acquireFini(acq: AcquireCtx): void {
    const ww = this.ww(acq);
    if (!ww) return;
    wwAcquireFini(this.shared.resvs, ww);
    this.acquireCtxs.delete(acq.stamp);
    for (const b of [...this.alreadyAnswered]) if (!this.heldLocks.has(b)) this.alreadyAnswered.delete(b);
  }
  async reserveFences(buf: BufferRef, n: number): Promise<number> {
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('resv');
    return dmaResvReserveFences(obj, n);
  }
  async addFenceLocked(buf: BufferRef, fence: number, usage: DmaResvUsage): Promise<number> {
    this.syncMisuse(this.usageCheck.add(buf.id, fence, usage));
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('resv');
    const r = dmaResvAddFence(obj, fence, usage);
    if (!r) this.published(fence);
    this.ev('resv-add', buf.id, usage);
    return r;
  }

  /** The device touched buffer memory right after a wait that did not give what it guards. */
  private reportUnsafeWait(bufferId: number, write: boolean): void {
    const u = this.unsafeWait;
    if (u === null) return;
    this.unsafeWait = null;
    if (u.rule === 'fence-timeout-misread') {
      this.cp.misuse(
        u.rule,
        `${write ? 'wrote' : 'read'} buffer ${bufferId} after its wait on ${u.fence} timed out (returned 0)`,
        { ino: bufferId },
        {
          site: write ? 'write' : 'read',
          hint: 'dma_fence_wait_timeout returns 0 on timeout, > 0 only when signalled: treat 0 as "not ready" and do not touch the buffer',
        },
      );
    } else {
      this.cp.misuse(
        u.rule,
        `${write ? 'wrote' : 'read'} buffer ${bufferId} guarded by ${u.fence}, which completed with ${errnoName(u.error)}`,
        { ino: bufferId, error: u.error },
        {
          site: write ? 'write' : 'read',
          hint: 'check dma_fence_get_status after the wait: a negative status means the producer failed; drop the frame and signal your own fence with the error',
        },
      );
    }
  }

  /** Walk the wait-for chain from this device's published wait; report a cycle through it. */
  private checkCycle(): void {
    const cycle = this.shared.waitFor.cycleFrom(
      this.index,
      deviceNames.length,
      stillBlocks(this.shared.fences, this.shared.waitFor, deviceNames.length),
    );
    if (cycle === null) return;
    const locks = cycle.filter((st) => st.kind === WAIT_LOCK).length;
    // Blocked on each other's resv locks now: tickets or not (with tickets only a wrong backoff gets here).
    const rule =
      locks === cycle.length ? 'resv-lock-deadlock' : locks > 0 ? 'fence-lock-wait-cycle' : 'fence-wait-cycle';
    this.cp.misuse(
      rule,
      `deadlock: ${cycle.map((st) => describeWait(st)).join('; ')} (back to the start)`,
      { devices: cycle.map((st) => deviceNames[st.device] ?? st.device).join(' -> ') },
      { site: `${rule}-now`, hint: CYCLE_HINTS[rule] },
    );
  }
  /**
   * The device is gone (finished, crashed or hung): every fence it created and never signalled is
   * signalled with `error`, so nobody waits for it forever, and its references are dropped. Returns how
   * many were still pending (a fence leak when the device finished normally).
   */
  abandonFences(error: number): number {
    return abandonLedger(this.shared.fences, this.ledger, error);
  }

  /** Note a reference the device now holds; a full ledger fails the device (it is hoarding fences). */
  private hold(fence: number, own: boolean): void {
    if (!this.ledger.add(fence, own)) {
      throw new DeviceCallError(`hold more than ${this.ledger.entriesMax} fences at once`, -EMFILE);
    }
  }

  // --- happens-before ---
  /** The buffer's resv slot (its HB shadow index), fetched once. */
  private async slotOf(bufferId: number): Promise<number> {
    let slot = this.bufferSlots.get(bufferId);
    if (slot === undefined) {
      slot = this.must(`resv of buffer ${bufferId}`, await this.cp.resvIndexOf(bufferId));
      this.bufferSlots.set(bufferId, slot);
    }
    return slot;
  }

  /** A wait saw `fence` signalled: acquire its clock (device fences only: only they carry one). */
  private acquired(fence: number): void {
    const t = this.shared.fences;
    if (!t.isLive(fence) || t.opsIdOf(fence) !== deviceFenceOps) return;
    this.waitedDevice = t.auxOf(fence) + 1;
    this.waitedSeqno = t.seqnoOf(fence);
    this.hb?.acquireFence(t.slotIndexOf(fence));
  }

  /** Check an access of bytes [offset, offset+length) of a buffer against every other device's. */
  private check(bufferId: number, offset: number, lengthBytes: number, write: boolean, op: Op): void {
    if (write) this.syncMisuse(this.usageCheck.write(bufferId, this.seqno));
    const hb = this.hb;
    if (hb === null || lengthBytes <= 0) return;
    const slot = this.bufferSlots.get(bufferId);
    assert(slot !== undefined, `${this.name} accessed buffer ${bufferId} without mapping it`);
    // One site object, refilled per access: `access` copies what it keeps.
    const site = this.hbSite;
    site.op = OP_CODES.get(op) ?? 0;
    site.job = this.seqno;
    site.timeNs = this.block.nowNs();
    site.waitedCtx = this.waitedDevice;
    site.waitedSeqno = this.waitedSeqno;
    const races = hb.access(slot, offset, offset + lengthBytes, write, site);
    for (const race of races) this.reportRace(bufferId, race, op);
  }

  private reportRace(bufferId: number, race: HbRace, op: Op): void {
    // How this device synchronised on the buffer, for the class: its last implicit wait on the resv
    // (waitResv, SYNC START) and where the other side's covering fence was then.
    const seen = this.resvSeen.get(bufferId);
    const hb = this.shared.hb;
    const sync = {
      cpuBracket: op.startsWith('cpu-') && this.cpuBrackets.inBracket(bufferId),
      resvWait: seen === undefined ? null : seen.usage,
      covering:
        seen === undefined || hb === null
          ? null
          : coveringUsage(seen.fences, race.previous.tid, race.previous.clock, this.shared.fences, hb),
    };
    const r = describeRace(race, bufferId, (tid) => deviceNames[tid] ?? `device${tid}`, sync);
    this.cp.misuse(r.rule, r.message, r.objects, r.detail);
  }

  // --- resv ---
  private async resvById(bufferId: number): Promise<DmaResv> {
    let r = this.resvCache.get(bufferId);
    if (r === undefined) {
      const idx = this.must(`resv of buffer ${bufferId}`, await this.cp.resvIndexOf(bufferId));
      r = new DmaResv(this.shared.resvs, idx);
      this.resvCache.set(bufferId, r);
    }
    return r;
  }
  async addFence(buf: BufferRef, fence: number, usage: DmaResvUsage): Promise<number> {
    this.syncMisuse(this.usageCheck.add(buf.id, fence, usage));
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    await this.block.point('resv');
    const locked = this.lockResv(obj, buf.id, null, false, 'add-fence');
    let ret = typeof locked === 'number' ? locked : await locked;
    if (ret) return ret;
    this.waits.holdLock(buf.id);
    try {
      ret = dmaResvReserveFences(obj, 1);
      if (!ret) ret = dmaResvAddFence(obj, fence, usage);
    } finally {
      this.hb?.releaseResv(obj.index);
      dmaResvUnlock(obj);
      this.waits.dropLock(buf.id);
    }
    if (!ret) this.published(fence);
    this.ev('resv-add', buf.id, usage);
    // Its fence on a received frame's buffer is published: the producer may now recycle the buffer.
    const port = this.unacked.get(buf.id);
    if (port !== undefined) {
      this.unacked.delete(buf.id);
      this.port(port).ack();
    }
    return ret;
  }
  async waitResv(buf: BufferRef, usage: DmaResvUsage, timeoutNs = Number.POSITIVE_INFINITY): Promise<number> {
    const obj = this.resvCache.get(buf.id) ?? (await this.resvById(buf.id));
    this.noteResvWait(buf.id, obj, usage);
    this.ev('resv-wait', buf.id, usage);
    // Fences already signalled are not waited for, but seeing them signalled orders us after them too.
    const fences = dmaResvGetFences(obj, usage, this.hb === null ? undefined : this.acquiredFn);
    // In the ledger while waiting: a worker killed in this wait (a hang) must not leak them.
    for (const e of fences) this.hold(e.fence, false);
    let left = 1;
    try {
      for (const e of fences) {
        if (left <= 0) break;
        this.beforeWait(e.fence, Number.isFinite(timeoutNs));
        left = await this.block.waitFence(this.shared.fences, e.fence, timeoutNs);
        this.unblocked();
        // Errors of implicit fences are the exporter's to handle (the device never held them): only a
        // timeout is the device's to respect.
        this.afterWait(e.fence, left, false);
      }
    } finally {
      // A wait can end by a hang or a crash: the references taken for it are dropped either way.
      for (const e of fences) {
        this.ledger.drop(e.fence);
        dmaFencePut(this.shared.fences, e.fence);
      }
    }
    return left;
  }

  // --- links ---
  private port(name: string): LinkRing {
    const r = this.shared.ports.get(name);
    assert(r !== undefined, `${this.name} has no port '${name}'`);
    return r;
  }
  async send(port: string, frame: Frame): Promise<void> {
    this.syncMisuse(this.cpuBrackets.published(frame.buffer.id));
    this.ev('send', frame.seq, frame.buffer.id);
    if (frame.fence) this.published(frame.fence);
    const ring = this.port(port);
    this.blocked(WAIT_SEND, ring.consumer);
    const delivered = await this.block.push(ring, {
      seq: frame.seq,
      bufferId: frame.buffer.id,
      fence: frame.fence,
      flags: frame.flags,
    });
    // Not in a finally: a device failed in this wait (a hang) leaves it published for the hang report.
    this.unblocked();
    // The frame carries the fence reference to the consumer (as a sync_file would) — from the moment it is
    // on the link, not before: a device stopped while blocked on a full link (a hang) still holds it, in its
    // ledger, and the host drops it. Dropped before the push, it was on neither and leaked.
    if (frame.fence) this.ledger.drop(frame.fence);
    if (!delivered) {
      // Nobody reads this link any more (its consumer crashed or was stopped): like a write to a pipe
      // with no reader, the frame goes nowhere, and its fence reference is the sender's to drop.
      this.ev('send-dropped', frame.seq, frame.buffer.id);
      if (frame.fence) dmaFencePut(this.shared.fences, frame.fence);
    }
  }
  async recv(port: string): Promise<Frame | null> {
    // Frames from this port it never fenced: it moved on, so it will not (a consumer that reads without
    // fencing is the detector's business, not the link's).
    for (const [id, p] of this.unacked) {
      if (p !== port) continue;
      this.unacked.delete(id);
      this.port(p).ack();
    }
    const ring = this.port(port);
    this.blocked(WAIT_RECV, ring.producer);
    const d = await this.block.pop(ring);
    // Not in a finally: a device failed in this wait (a hang) leaves it published for the hang report.
    this.unblocked();
    if (d === null) {
      this.ev('recv', -1);
      return null;
    }
    // The frame's fence reference is this device's from the pop on: in its ledger before anything that can
    // fail or be cut short (the control-plane call below), so the host drops it if the device dies here.
    if (d.fence) this.hold(d.fence, false);
    let buffer = this.bufferRefs.get(d.bufferId);
    if (buffer === undefined) {
      buffer = this.must(`buffer ${d.bufferId}`, await this.cp.bufferRef(d.bufferId));
      this.bufferRefs.set(d.bufferId, buffer);
    }
    if (this.unacked.has(d.bufferId)) this.port(this.unacked.get(d.bufferId) as string).ack();
    this.unacked.set(d.bufferId, port);
    this.ev('recv', d.seq, d.bufferId);
    return { seq: d.seq, buffer, fence: d.fence, flags: d.flags };
  }
  async close(port: string): Promise<void> {
    await this.block.point('close');
    this.ev('close');
    this.port(port).close();
  }
}
