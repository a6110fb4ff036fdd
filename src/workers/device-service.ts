/**
 * The kernel side of the device API: the control plane every host calls (directly on the sim host,
 * through comlink from device workers). It runs on the kernel thread and owns, per run:
 * - one kernel task per device (its pid owns resv locks and is charged for its allocations);
 * - which buffers, attachments and mappings each device holds, so a crashed or hung device's resources
 *   are reclaimed and its pending fences signalled with an error;
 * - the mapping-state table in shared memory that both hosts check on every device access: a device in
 *   another thread learns that the exporter moved or unmapped a buffer without asking the kernel.
 *
 * Contract: every method returns a value or a negative errno; a device's misuse becomes a kernel warning
 * naming the device. Tables are bounded (MAPPINGS_MAX, BUFFERS_PER_RUN_MAX).
 *
 * The kernel thread never sleeps on a resv lock a device holds (the lock API lets a device hold one across
 * calls): it serves every device, so sleeping there could wait on a device that waits on it, and would
 * stop the watchdog with it. A call that needs a lock another device holds returns -EAGAIN without doing
 * anything; the device's runtime then waits for the holder on its own thread — as the device's driver
 * would sleep in dma_resv_lock — and calls again. Every such call takes the lock with a trylock (attach and
 * detach through the kernel functions' internal caller-locked form), so the kernel thread never waits.
 */

import { describeNode, LOCKDEP_EDGES_MAX, LockdepGraph } from '../detect/lockdep.js';
import { WaitForShared } from '../detect/wait-for.js';
import type { AttachmentRef, BufferRef } from '../devices/device.js';
import { assert } from '../kernel/assert.js';
import {
  type DmaBuf,
  type DmaBufAttachment,
  dmaBufBeginCpuAccess,
  dmaBufDetach,
  dmaBufDynamicAttach,
  dmaBufEndCpuAccess,
  dmaBufMapAttachment,
  dmaBufPut,
  dmaBufUnmapAttachment,
} from '../kernel/dma-buf.js';
import type { DmaDataDirection, SgEntry, SgTable } from '../kernel/dma-mapping.js';
import {
  type DmaResv,
  dmaResvHeldBy,
  dmaResvIsLocked,
  dmaResvMightLock,
  dmaResvTrylock,
  dmaResvUnlock,
} from '../kernel/dma-resv.js';
import { EAGAIN, EDEADLK, EINVAL, ENOENT, ENOMEM, type Errno, isErr } from '../kernel/errno.js';
import { vramEvictLocked } from '../kernel/heaps/vram-heap.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Task } from '../kernel/kernel-core.js';
import type { PageRun } from '../kernel/memory.js';
import type { WarningDetail } from '../kernel/trace.js';
import { CYCLE_HINTS, DEADLOCK_RULES } from './device-runtime.js';

/** How a lockdep edge's operation reads in a report. */
const EDGE_VERBS: Record<string, string> = {
  lock: 'took',
  'lock-slow': 'took',
  'add-fence': 'took (to add a fence)',
  wait: 'waited for',
};

/** Live mappings across all devices of a run. */
export const MAPPINGS_MAX = 4096;
/** Buffers one run may create. */
export const BUFFERS_PER_RUN_MAX = 4096;

/**
 * The mapping table in shared memory: two Int32 words per slot, [state, generation]. A mapping id is
 * `generation × MAPPINGS_MAX + slot`, so a device holding an id from before an unmap can never reach the
 * mapping that reuses the slot: the generation no longer matches, and the access is reported as dead.
 */
export const MAP_FREE = 0;
export const MAP_LIVE = 1;
/** Distinct (rule, device, site) triples a run records; more are counted under OVERFLOW_KEY. */
export const MISUSE_SITES_MAX = 4096;
const OVERFLOW_KEY = 'misuse-sites-overflow|-|';

/** The exporter moved the buffer (move_notify): reads still reach the old pages, writes are misuse. */
export const MAP_INVALIDATED = 2;
export const MAP_DEAD = 3;

export interface MappingInfo {
  id: number;
  attachmentId: number;
  bufferId: number;
  sizeBytes: number;
  entries: SgEntry[];
  /** The firewall stops this device's accesses (see AttachEntry): reads see zeros, writes are dropped. */
  firewalled: boolean;
}

export interface DeviceServiceHooks {
  /** Deliver move_notify to the device that owns `att` (sim: a callback; workers: a message). */
  moveNotify(device: string, att: AttachmentRef): void;
}

interface DeviceEntry {
  readonly name: string;
  /** Its model's name: what a protected heap's firewall may admit besides the device's own name. */
  readonly model: string;
  readonly task: Task;
  readonly buffers: Set<number>;
  readonly attachments: Set<number>;
}

interface AttachEntry {
  readonly ref: AttachmentRef;
  readonly device: string;
  readonly attach: DmaBufAttachment;
  readonly maps: Set<number>;
  /** A protected buffer whose firewall does not admit the device: its DMA never reaches the memory. */
  readonly firewalled: boolean;
}

interface MapEntry {
  readonly attachmentId: number;
  readonly sgt: SgTable;
  readonly dir: DmaDataDirection;
}

export class DeviceService {
  readonly kernel: Kernel;
  /** Shared mapping table (see above): both hosts check it before every device access. */
  readonly mappingWords: Int32Array;
  private readonly hooks: DeviceServiceHooks;
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly buffers = new Map<number, DmaBuf>();
  private readonly attachments = new Map<number, AttachEntry>();
  private readonly maps = new Map<number, MapEntry>();
  private nextAttachId = 1;
  private buffersCreated = 0;
  /** What each device is blocked on: devices write it, hang reports read it. */
  readonly waitFor = WaitForShared.create();
  /** The run's lock-order / cross-release graph. */
  private readonly lockGraph = new LockdepGraph();

  constructor(kernel: Kernel, hooks: DeviceServiceHooks) {
    this.kernel = kernel;
    this.hooks = hooks;
    this.mappingWords = new Int32Array(new SharedArrayBuffer(MAPPINGS_MAX * 2 * 4));
  }

  private readonly stopped = new Set<string>();
  /** Deadlocks devices have reported (a cycle rule): the worker host's cue to look for one now. */
  deadlockReports = 0;

  registerDevice(name: string, model: string): Task {
    assert(!this.devices.has(name), `device ${name} registered twice`);
    const task = this.kernel.createTask(name);
    this.devices.set(name, { name, model, task, buffers: new Set(), attachments: new Set() });
    return task;
  }

  /**
   * A device recorded a lockdep edge. An edge that closes a cycle is a deadlock that can happen, whether
   * or not this run hung: reported once per cycle, by the device whose edge closed it.
   */
  lockdep(device: string, from: string, to: string, op: string): void {
    const r = this.lockGraph.add(from, to, { device, op, timeNs: this.kernel.nowNs() });
    if (r.kind === 'overflow') {
      this.misuse(device, 'lockdep-overflow', `more than ${LOCKDEP_EDGES_MAX} lock dependencies: lockdep stops here`);
      return;
    }
    if (r.kind !== 'cycle') return;
    const locksOnly = r.edges.every((e) => e.from.startsWith('resv:') && e.to.startsWith('resv:'));
    const rule = locksOnly ? 'ww-no-ctx-abba' : 'fence-lock-wait-cycle';
    const steps = r.edges.map((e) => {
      const held = e.from.startsWith('signal:') ? 'it owed published fences' : `holding ${describeNode(e.from)}`;
      return `${e.site.device} ${EDGE_VERBS[e.site.op] ?? e.site.op} ${describeNode(e.to)} while ${held}`;
    });
    this.misuse(
      device,
      rule,
      `possible deadlock: ${steps.join('; ')}`,
      { cycle: r.edges.map((e) => e.from).join(' -> ') },
      {
        site: r.edges
          .map((e) => `${e.from}>${e.to}`)
          .sort()
          .join(','),
        hint: CYCLE_HINTS[rule],
      },
    );
  }

  private dev(name: string): DeviceEntry {
    const d = this.devices.get(name);
    assert(d !== undefined, `unknown device ${name}`);
    return d;
  }

  /**
   * A device's misuse, as a kernel warning naming the device. Deduplicated per site: the first
   * occurrence of (rule, device, site) is the warning; later ones only count (`occurrences`), so a bug
   * that fires every frame is one finding, and the kernel's bounded warning list keeps room for others.
   */
  misuse(
    device: string,
    rule: string,
    message: string,
    objects: Record<string, string | number> = {},
    detail?: WarningDetail,
  ): void {
    if (DEADLOCK_RULES.has(rule)) this.deadlockReports++;
    const key = `${rule}|${device}|${detail?.site ?? ''}`;
    const seen = this.occurrences.get(key);
    if (seen !== undefined) {
      this.occurrences.set(key, seen + 1);
      return;
    }
    if (this.occurrences.size >= MISUSE_SITES_MAX) {
      this.occurrences.set(OVERFLOW_KEY, (this.occurrences.get(OVERFLOW_KEY) ?? 0) + 1);
      return;
    }
    this.occurrences.set(key, 1);
    const d = this.devices.get(device);
    const run = () => this.kernel.warn(rule, `${device}: ${message}`, { device, ...objects }, detail);
    if (d) this.kernel.runAs(d.task, run);
    else run();
  }

  /** How many times (rule, device, site) fired; `misuse-sites-overflow|-|` counts what no longer fit. */
  readonly occurrences = new Map<string, number>();

  bufferRef(id: number): BufferRef | Errno {
    const b = this.buffers.get(id);
    if (b === undefined) return -ENOENT;
    return { id, sizeBytes: b.sizeBytes, heap: b.owner?.heapName ?? b.expName, restricted: this.isRestricted(b) };
  }

  /** Whether the buffer is protected (`is_dma_buf_restricted`, the query the MTK series proposed). */
  private isRestricted(buf: DmaBuf): boolean {
    return buf.restriction.kind === 'protected';
  }

  /** The buffer's resv index in the shared resv table (workers lock and add fences locally). */
  resvIndexOf(id: number): number | Errno {
    const b = this.buffers.get(id);
    return b === undefined ? -ENOENT : b.resv.index;
  }

  allocate(device: string, heapName: string, sizeBytes: number): BufferRef | Errno {
    const d = this.dev(device);
    const heap = this.kernel.heaps.find(heapName);
    if (heap === undefined) return -ENOENT;
    if (this.buffersCreated >= BUFFERS_PER_RUN_MAX) return -ENOMEM;
    const buf = this.kernel.runAs(d.task, () => this.kernel.heaps.allocateInKernel(heap, sizeBytes, 2));
    if (isErr(buf)) return buf;
    this.buffersCreated++;
    this.buffers.set(buf.ino, buf);
    d.buffers.add(buf.ino);
    return { id: buf.ino, sizeBytes: buf.sizeBytes, heap: heapName, restricted: this.isRestricted(buf) };
  }

  /** Drop the device's reference (taken at allocate or attach). */
  release(device: string, id: number): number {
    const d = this.dev(device);
    const buf = this.buffers.get(id);
    if (buf === undefined || !d.buffers.has(id)) {
      this.misuse(device, 'device-release-unheld', `released buffer ${id} it does not hold`, { ino: id });
      return -EINVAL;
    }
    d.buffers.delete(id);
    this.kernel.runAs(d.task, () => dmaBufPut(buf));
    if (buf.released) this.buffers.delete(id);
    return 0;
  }

  attach(device: string, id: number, dynamic: boolean): AttachmentRef | Errno {
    const d = this.dev(device);
    const buf = this.buffers.get(id);
    if (buf === undefined) return -ENOENT;
    const attId = this.nextAttachId++;
    const ref: AttachmentRef = Object.freeze({ id: attId, bufferId: id, dynamic });
    const importer = dynamic
      ? {
          moveNotify: (a: DmaBufAttachment) => {
            const e = this.attachments.get(attId);
            if (e === undefined || e.attach !== a) return;
            for (const m of e.maps) Atomics.store(this.mappingWords, 2 * (m % MAPPINGS_MAX), MAP_INVALIDATED);
            this.hooks.moveNotify(device, ref);
          },
        }
      : null;
    const attach = this.withLock(d, buf.resv, 'dma_buf_attach', () =>
      dmaBufDynamicAttach(buf, { name: device }, importer, null, true),
    );
    if (isErr(attach)) return attach;
    // An importer holds a reference for as long as it is attached (dma_buf_get in real drivers).
    buf.file.get();
    const firewalled = !this.firewallAdmits(d, buf);
    this.attachments.set(attId, { ref, device, attach, maps: new Set(), firewalled });
    d.attachments.add(attId);
    return ref;
  }

  detach(device: string, attId: number): number {
    const d = this.dev(device);
    const e = this.attachments.get(attId);
    if (e === undefined || e.device !== device) {
      this.misuse(device, 'device-detach-unknown', `detached attachment ${attId} it does not hold`);
      return -EINVAL;
    }
    for (const m of [...e.maps]) {
      const r = this.unmap(device, m);
      if (r) return r;
    }
    const r = this.withLock(d, e.attach.dmabuf.resv, 'dma_buf_detach', () => {
      dmaBufDetach(e.attach.dmabuf, e.attach, true);
      return 0;
    });
    if (r) return r;
    // After the unlock: the last reference frees the buffer, and its resv with it.
    this.kernel.runAs(d.task, () => dmaBufPut(e.attach.dmabuf));
    this.attachments.delete(attId);
    d.attachments.delete(attId);
    if (e.attach.dmabuf.released) this.buffers.delete(e.ref.bufferId);
    return 0;
  }

  map(device: string, attId: number, dir: DmaDataDirection): MappingInfo | Errno {
    const d = this.dev(device);
    const e = this.attachments.get(attId);
    if (e === undefined || e.device !== device) return -EINVAL;
    const slot = this.freeMapSlot();
    if (slot < 0) return -ENOMEM;
    const sgt = this.withLock(d, e.attach.dmabuf.resv, 'dma_buf_map_attachment_unlocked', () =>
      dmaBufMapAttachment(e.attach, dir),
    );
    if (isErr(sgt)) return sgt;
    const gen = Atomics.add(this.mappingWords, 2 * slot + 1, 1) + 1;
    const id = gen * MAPPINGS_MAX + slot;
    this.maps.set(id, { attachmentId: attId, sgt, dir });
    e.maps.add(id);
    Atomics.store(this.mappingWords, 2 * slot, MAP_LIVE);
    return {
      id,
      attachmentId: attId,
      bufferId: e.ref.bufferId,
      sizeBytes: sgt.totalBytes,
      entries: [...sgt.entries],
      firewalled: e.firewalled,
    };
  }

  /**
   * Whether a protected buffer's firewall lets device `d` reach it; false is reported at once. The kernel
   * lets the attach happen (tee_heap_attach does no device check, kernel-semantics §9.2): the hardware
   * firewall is what stops the DMA, and on a real SoC the first sign is a bus error or a black frame
   * much later. Reported at the attach, the earliest point the violation is certain, once per device and heap.
   */
  private firewallAdmits(d: DeviceEntry, buf: DmaBuf): boolean {
    const r = buf.restriction;
    if (r.kind !== 'protected' || r.firewall.includes(d.name) || r.firewall.includes(d.model)) return true;
    const heap = buf.owner?.heapName ?? buf.expName;
    this.misuse(
      d.name,
      'restricted-attach',
      `attached buffer ${buf.ino} of the protected heap ${heap}, whose firewall admits only ${r.firewall.join(', ')}: its DMA will not reach the memory (reads see zeros, writes are dropped)`,
      { ino: buf.ino, heap },
      {
        site: heap,
        hint: `keep protected buffers away from ${d.name} (check BufferRef.restricted before importing), or admit it in the scenario's kernel.protected['${r.useCase}'].firewall if the hardware does`,
      },
    );
    return false;
  }

  unmap(device: string, mapId: number): number {
    const d = this.dev(device);
    const m = this.maps.get(mapId);
    const e = m === undefined ? undefined : this.attachments.get(m.attachmentId);
    if (m === undefined || e === undefined || e.device !== device) {
      this.misuse(device, 'device-unmap-unknown', `unmapped mapping ${mapId} it does not hold`);
      return -EINVAL;
    }
    const r = this.withLock(d, e.attach.dmabuf.resv, 'dma_buf_unmap_attachment_unlocked', () => {
      dmaBufUnmapAttachment(e.attach, m.sgt, m.dir);
      return 0;
    });
    if (r !== 0) return r;
    Atomics.store(this.mappingWords, 2 * (mapId % MAPPINGS_MAX), MAP_DEAD);
    this.maps.delete(mapId);
    e.maps.delete(mapId);
    return 0;
  }

  /**
   * A device driver asks the exporter to move a buffer out of device-local memory (vram-heap.ts): bytes
   * moved or -errno. Dynamic importers hear of it through move_notify before this returns.
   */
  evict(device: string, id: number): number {
    const d = this.dev(device);
    const buf = this.buffers.get(id);
    const held = d.buffers.has(id) || [...d.attachments].some((a) => this.attachments.get(a)?.ref.bufferId === id);
    if (buf === undefined || !held) {
      this.misuse(device, 'device-evict-unheld', `asked to evict buffer ${id} it does not hold`, { ino: id });
      return -EINVAL;
    }
    return this.withLock(d, buf.resv, 'vram_evict', () => vramEvictLocked(this.kernel, buf));
  }

  /** DMA_BUF_IOCTL_SYNC for a device's CPU access (a TEE, or a bug that touches bytes with the CPU). */
  /**
   * A CPU view of a buffer the device holds (allocated or attached): the vmap's pages. -EINVAL when the
   * exporter has no CPU path (no vmap: protected memory, device-local vram).
   */
  cpuPages(device: string, id: number): { runs: PageRun[]; cached: boolean } | Errno {
    const d = this.dev(device);
    const buf = this.buffers.get(id);
    if (buf === undefined) return -ENOENT;
    const holds = d.buffers.has(id) || [...d.attachments].some((a) => this.attachments.get(a)?.ref.bufferId === id);
    if (!holds) {
      this.misuse(device, 'device-cpu-map-unheld', `CPU-mapped buffer ${id} it does not hold`, { ino: id });
      return -EINVAL;
    }
    const r = buf.restriction;
    if (r.kind === 'protected') {
      const heap = buf.owner?.heapName ?? buf.expName;
      this.misuse(
        device,
        'restricted-cpu-map',
        `CPU-mapped buffer ${buf.ino} of the protected heap ${heap}: protected memory has no CPU path (-EINVAL, no mmap or vmap op)`,
        { ino: id, heap },
        {
          site: heap,
          hint: 'never map protected buffers for the CPU (check BufferRef.restricted); screenshots and thumbnails of protected content are black by design',
        },
      );
    }
    if (!buf.ops.vmap || !buf.ops.vmapPages) return -EINVAL;
    const v = buf.ops.vmapPages(buf);
    return { runs: v.runs.map((r) => ({ pfn: r.pfn, pageCount: r.pageCount })), cached: v.cached };
  }

  cpuAccess(device: string, id: number, begin: boolean, dir: DmaDataDirection): number {
    const d = this.dev(device);
    const buf = this.buffers.get(id);
    if (buf === undefined) return -ENOENT;
    return this.kernel.runAs(d.task, () => (begin ? dmaBufBeginCpuAccess(buf, dir) : dmaBufEndCpuAccess(buf, dir)));
  }

  /**
   * Whether the kernel thread may go on into a call that locks `resv` for device `d`: 0 when it is unlocked;
   * -EAGAIN when another device holds it (the caller waits and retries, see the contract); -EDEADLK when `d`
   * holds it itself — the kernel call would take it again and deadlock, which the might-lock check reports.
   */
  private lockGate(d: DeviceEntry, resv: DmaResv, site: string): number {
    if (!dmaResvIsLocked(resv)) return 0;
    return this.kernel.runAs(d.task, () => dmaResvMightLock(resv, site)) ? -EAGAIN : -EDEADLK;
  }

  /** `fn` as device `d` with `resv` locked by a trylock: the `_unlocked` kernel call, minus the sleep. */
  private withLock<T>(d: DeviceEntry, resv: DmaResv, site: string, fn: () => T | Errno): T | Errno {
    const gate = this.lockGate(d, resv, site);
    if (gate) return gate;
    return this.kernel.runAs(d.task, () => {
      // Free a moment ago; on the worker host a device may have taken it since.
      if (!dmaResvTrylock(resv)) return -EAGAIN;
      try {
        return fn();
      } finally {
        dmaResvUnlock(resv);
      }
    });
  }

  /** The host cut this device short (a crash, a hang): what it still holds is no misuse of its own. */
  markStopped(device: string): void {
    this.stopped.add(device);
  }

  /** Reclaim everything a device still holds (end of run, crash, hang); returns what had leaked. */
  teardown(device: string): { mappings: number; attachments: number; buffers: number } {
    const d = this.dev(device);
    let mappings = 0;
    for (const attId of [...d.attachments]) {
      const e = this.attachments.get(attId);
      mappings += e?.maps.size ?? 0;
      if (e !== undefined) this.breakLockOfGone(e.attach.dmabuf);
      this.detach(device, attId);
    }
    for (const id of d.buffers) {
      const buf = this.buffers.get(id);
      if (buf !== undefined) this.breakLockOfGone(buf);
    }
    const attachments = d.attachments.size;
    const buffers = d.buffers.size;
    for (const id of [...d.buffers]) this.release(device, id);
    return { mappings, attachments, buffers };
  }

  /**
   * At teardown every device has ended, so a resv lock still held will never be released by its holder:
   * released for it, so that the buffer can go, and reported against it (`device-exit-locked`) unless the
   * host stopped it (`markStopped`: a crash or a hang, reported as such, cut it short mid-job).
   */
  private breakLockOfGone(buf: DmaBuf): void {
    const resv = buf.resv;
    if (!dmaResvIsLocked(resv)) return;
    for (const h of this.devices.values()) {
      if (!dmaResvHeldBy(resv, h.task)) continue;
      if (!this.stopped.has(h.name)) {
        this.misuse(h.name, 'device-exit-locked', `ended holding the resv lock of buffer ${buf.ino}`, { ino: buf.ino });
      }
      this.kernel.runAs(h.task, () => dmaResvUnlock(resv));
      return;
    }
  }

  private freeMapSlot(): number {
    // Slot 0 is never used, so 0 can mean "no mapping" in shared words.
    for (let i = 1; i < MAPPINGS_MAX; i++) {
      const s = Atomics.load(this.mappingWords, 2 * i);
      if (s === MAP_FREE || s === MAP_DEAD) return i;
    }
    return -1;
  }
}

/**
 * The state of mapping `id` as a device sees it: MAP_LIVE, MAP_INVALIDATED, or MAP_DEAD (unmapped, or an
 * id from before the slot was reused).
 */
export function mappingState(words: Int32Array, id: number): number {
  const slot = id % MAPPINGS_MAX;
  const gen = Math.floor(id / MAPPINGS_MAX);
  if (slot <= 0 || Atomics.load(words, 2 * slot + 1) !== gen) return MAP_DEAD;
  const s = Atomics.load(words, 2 * slot);
  return s === MAP_FREE ? MAP_DEAD : s;
}
