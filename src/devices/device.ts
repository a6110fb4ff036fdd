/**
 * The device API: what a simulated device (camera, decoder, GPU, display, TEE, or a user's own model) may
 * do. Models are written once against `DeviceContext` and run unchanged on both hosts:
 * - the worker host: one worker_thread per device, real parallelism, blocking waits on Atomics;
 * - the deterministic (sim) host: every device on one thread, and every call below that another device
 *   can observe or be ordered by (fences, resv locks, links, buffers and mappings, `busy`) is a scheduling
 *   point where a seeded scheduler picks who runs next. Memory accesses (`read`, `write`, `fill`, `copy`,
 *   `checksum`, their CPU twins) are not: they order nothing, so an unordered pair is a race whichever
 *   order they run in, and the happens-before detector reports it on every schedule (loom and TSan treat
 *   plain accesses the same way). To let a consumer see a half-written frame, put a `busy` between the
 *   writes, as a real engine takes time to write one.
 *
 * Contract for models:
 * - Every call is async; await it. Between two scheduling points a device runs alone (on the sim host) —
 *   that is the unit of interleaving. Do not keep your own timers or threads; use `busy` for work that takes time.
 * - Buffers are named by `BufferRef`s; bytes are reached only through a `Mapping` (DMA addresses behind it),
 *   so a device never sees pages. `read`/`write` touch shared memory in place; `read` returns a copy the
 *   device owns.
 * - Misuse is data: a wait on a fence you do not hold, a write through a mapping the exporter moved, a
 *   signal twice — the host reports it as a Finding and the run goes on.
 */
import type { DmaResvUsage } from '../kernel/dma-resv.js';
import type { Prng } from '../workers/prng.js';

/** A dma-buf as devices name it (the kernel's inode number). */
export interface BufferRef {
  readonly id: number;
  readonly sizeBytes: number;
  readonly heap: string;
  /**
   * From a protected heap (`is_dma_buf_restricted`): no CPU access at all, and only the devices its
   * firewall admits reach it by DMA. A driver checks this before it imports or CPU-maps a buffer.
   */
  readonly restricted: boolean;
}

/** A device's attachment to a buffer. */
export interface AttachmentRef {
  readonly id: number;
  readonly bufferId: number;
  readonly dynamic: boolean;
}

/** A live DMA mapping of an attachment. */
export interface Mapping {
  readonly id: number;
  readonly attachmentId: number;
  readonly bufferId: number;
  readonly sizeBytes: number;
}

/** A CPU view of a buffer (a driver's vmap): loads and stores go through the non-coherent CPU cache. */
export interface CpuMapping {
  readonly id: number;
  readonly buffer: BufferRef;
}

/** What travels on a link: which buffer, the fence that guards it, which frame. Never bytes. */
export interface Frame {
  readonly seq: number;
  readonly buffer: BufferRef;
  /** Fence the consumer waits on before reading; 0 when the producer attached it to the resv instead. */
  readonly fence: number;
  readonly flags: number;
}

/**
 * In a device's per-frame `checksums` / `received:<port>`: the frame's fence completed with an error (its
 * producer failed, or the watchdog timed it out), so its bytes were neither produced nor read — the error
 * was passed on instead. Content checks skip it.
 */
export const FRAME_FAILED = -1;

/**
 * In `received:<port>`: the consumer did not read this frame's bytes, by design — a protected buffer it may
 * not touch (`BufferRef.restricted`), composed as black instead. Content checks skip it.
 */
export const FRAME_UNREAD = -2;

/** A `dma_fence_add_callback` registration: `ret` is what the add returned (0, or -ENOENT). */
export interface FenceCallback {
  readonly fence: number;
  readonly ret: number;
}

/** A `ww_acquire_ctx`: one ticket for locking several buffers' resvs (Wait-Die: the older ticket wins). */
export interface AcquireCtx {
  readonly stamp: number;
}

export const DMA_DIR_BIDIRECTIONAL = 0;
export const DMA_DIR_TO_DEVICE = 1;
export const DMA_DIR_FROM_DEVICE = 2;

export interface DeviceContext {
  /** The device's instance name in the scenario ('cam0'). */
  readonly name: string;
  /** The model's name ('camera'). */
  readonly model: string;
  /** This device's stream of the run's seed. */
  readonly prng: Prng;
  /** Monotonic time in ns: virtual on the sim host, real on the worker host. */
  nowNs(): number;
  log(message: string, fields?: Record<string, unknown>): void;
  /** The device is busy for `ns` (DMA, compute, scan-out). */
  busy(ns: number): Promise<void>;

  // --- buffers (kernel control plane) ---
  allocate(heap: string, sizeBytes: number): Promise<BufferRef>;
  /** Drop this device's reference; the kernel frees the buffer when nobody holds it. */
  release(buf: BufferRef): Promise<void>;
  /** Static attach (pinned while mapped) or dynamic (gets move_notify, must re-map). */
  attach(buf: BufferRef, opts?: { dynamic?: boolean }): Promise<AttachmentRef>;
  detach(att: AttachmentRef): Promise<void>;
  map(att: AttachmentRef, dir?: number): Promise<Mapping>;
  unmap(m: Mapping): Promise<void>;
  /** Called when the exporter moved a buffer this device attached dynamically; re-map before more DMA. */
  onMoveNotify(fn: (att: AttachmentRef) => void): void;
  /**
   * The exporter-side request a GPU driver makes under memory pressure: move the buffer out of
   * device-local memory. Bytes moved (0 when it was not in device-local memory), or a negative errno:
   * -EBUSY pinned or busy (unsignalled fences), -EINVAL an exporter that cannot move it or a buffer this
   * device does not hold, -ENOMEM no system memory. This device's own move_notify handlers have run by
   * the time it returns; other devices' follow on both hosts (at once on sim, by message on workers).
   */
  evict(buf: BufferRef): Promise<number>;

  // --- bytes (data plane) ---
  write(m: Mapping, offset: number, data: Uint8Array): Promise<void>;
  read(m: Mapping, offset: number, lengthBytes: number): Promise<Uint8Array>;
  /** Fill a range with a byte value (cheap, for big frames). */
  fill(m: Mapping, offset: number, lengthBytes: number, value: number): Promise<void>;
  /** The frame checksum (`checksum.ts`) of a range, computed in place (what a display CRC unit does). */
  checksum(m: Mapping, offset: number, lengthBytes: number): Promise<number>;
  /**
   * A DMA copy engine: `lengthBytes` from `src` at `srcOffset` to `dst` at `dstOffset`, memory to memory
   * (a read of `src` and a write of `dst`; the bytes never pass through the device's own memory).
   */
  copy(src: Mapping, srcOffset: number, dst: Mapping, dstOffset: number, lengthBytes: number): Promise<void>;

  // --- CPU access (what a driver does through a vmap; needs SYNC, since the CPU cache is not coherent) ---
  /** A CPU view of a buffer the device holds; fails for memory with no CPU path (protected, vram). */
  cpuMap(buf: BufferRef): Promise<CpuMapping>;
  cpuWrite(cm: CpuMapping, offset: number, data: Uint8Array): Promise<void>;
  cpuFill(cm: CpuMapping, offset: number, lengthBytes: number, value: number): Promise<void>;
  cpuRead(cm: CpuMapping, offset: number, lengthBytes: number): Promise<Uint8Array>;
  /** Checksum of what the CPU sees (its cache, then memory). */
  cpuChecksum(cm: CpuMapping, offset: number, lengthBytes: number): Promise<number>;
  /**
   * DMA_BUF_IOCTL_SYNC: 'start' before CPU access (waits for conflicting fences, invalidates), 'end' after
   * (writes dirty lines back). Skipping 'end' leaves CPU writes in the cache, unseen by devices.
   */
  cpuSync(buf: BufferRef, phase: 'start' | 'end', access?: 'read' | 'write' | 'rw'): Promise<number>;

  // --- fences ---
  /** A new fence on this device's timeline (next seqno). */
  createFence(): Promise<number>;
  signal(fence: number, error?: number): Promise<number>;
  /**
   * `dma_fence_wait_timeout`: > 0 when signalled (even with an error: check `status`), 0 on timeout (do
   * not touch what the fence guards), -EINVAL for a negative timeout.
   */
  wait(fence: number, timeoutNs?: number): Promise<number>;
  /** The fence's status: 0 pending, 1 done, < 0 the error it completed with (the job failed). */
  status(fence: number): number;
  /**
   * `dma_fence_add_callback`: register for the fence's signal. `ret` 0: `waitCallback` returns once it
   * has signalled. `ret` -ENOENT: it had signalled already and the callback will never run — do the work
   * now (drivers that ignore this wait forever).
   */
  addCallback(fence: number): Promise<FenceCallback>;
  /** Until the callback ran: 0. For a registration refused with -ENOENT it never will: misuse, -ENOENT at once. */
  waitCallback(cb: FenceCallback): Promise<number>;
  put(fence: number): Promise<void>;

  /**
   * `dma_fence_begin_signalling`: from here to `endSignalling(cookie)` the device is on the path that
   * signals its published fences, where it must not wait on fences, take a resv lock or allocate (the
   * kernel's cross-driver contract; lockdep's `dma_fence_map`). Sections nest.
   */
  beginSignalling(): number;
  endSignalling(cookie: number): void;

  // --- resv locks (dma_resv_lock, a Wait-Die ww_mutex), for jobs that lock several buffers ---
  /** `ww_acquire_init`: a ticket; younger tickets back off (-EDEADLK) from older holders. */
  acquireInit(): AcquireCtx;
  /**
   * `dma_resv_lock(buf, acq)`: 0; -EALREADY when `acq` already holds it (do not unlock it twice);
   * -EDEADLK when `acq` must back off: unlock everything, `lockSlow` this buffer, then lock the rest.
   * Without a context (`null`) there is no deadlock avoidance. Blocks while another device holds it.
   */
  lock(buf: BufferRef, acq: AcquireCtx | null): Promise<number>;
  /** `dma_resv_lock_slow`: after -EDEADLK, with nothing else held; never backs off. */
  lockSlow(buf: BufferRef, acq: AcquireCtx): Promise<number>;
  unlock(buf: BufferRef): Promise<void>;
  /** `ww_acquire_done`: no more locks with this ticket. */
  acquireDone(acq: AcquireCtx): void;
  /** `ww_acquire_fini`: every lock taken with it must be unlocked first. */
  acquireFini(acq: AcquireCtx): void;
  /** `dma_resv_reserve_fences` with the lock held: room for `n` more fences until the unlock. */
  reserveFences(buf: BufferRef, n: number): Promise<number>;
  /** `dma_resv_add_fence` with the lock held, into a reserved slot. */
  addFenceLocked(buf: BufferRef, fence: number, usage: DmaResvUsage): Promise<number>;

  // --- implicit sync through the buffer's dma_resv ---
  /** Lock, reserve a slot, add, unlock: the whole `dma_resv` dance for one fence. */
  addFence(buf: BufferRef, fence: number, usage: DmaResvUsage): Promise<number>;
  /** Wait for every fence of usage ≤ `usage` on the buffer. */
  waitResv(buf: BufferRef, usage: DmaResvUsage, timeoutNs?: number): Promise<number>;

  // --- links ---
  /**
   * Send a frame on an output port; waits while the link is full. The frame's fence reference goes with
   * it: the sender must not put it, the receiver must.
   */
  send(port: string, frame: Frame): Promise<void>;
  /** Next frame on an input port, or null at end of stream. */
  recv(port: string): Promise<Frame | null>;
  /** End of stream on an output port. */
  close(port: string): Promise<void>;
}

export interface KnobDefaults {
  frames: number;
}

/** What a device reports when it finishes. */
export interface DeviceResult {
  frames: number;
  /** Named figures: checksums shown by a display, frames dropped, evictions, ... */
  [figure: string]: number | number[] | string;
}

export interface DeviceModel<Knobs> {
  readonly name: string;
  /** For a user's own model: its module URL (`import.meta.url`), so a worker can load it. */
  readonly module?: string;
  /**
   * Parse and default the knobs; throw a ZodError (path-named) for bad ones. `defaults` carries the
   * scenario-wide values a model may adopt (the frame count for producers).
   */
  parseKnobs(raw: unknown, defaults: KnobDefaults): Knobs;
  readonly inputs: (knobs: Knobs) => readonly string[];
  readonly outputs: (knobs: Knobs) => readonly string[];
  run(ctx: DeviceContext, knobs: Knobs): Promise<DeviceResult>;
}

/** Declare a device model (identity; gives the knobs their type). */
export function defineDevice<Knobs>(model: DeviceModel<Knobs>): DeviceModel<Knobs> {
  return Object.freeze(model);
}
