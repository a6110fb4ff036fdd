/**
 * The CPU-access and resv-usage rules a device runtime checks beside happens-before (docs/findings.md §1,
 * §2; detection.md §3.8, catalog classes 5–9). Pure bookkeeping, one instance per device: the runtime
 * feeds it the device's calls and turns what it returns into findings.
 *
 * - `CpuBrackets`: DMA_BUF_IOCTL_SYNC brackets of the device's CPU, per buffer. The kernel keeps no
 *   START/END state at all (dma_buf_ioctl → dma_buf_begin/end_cpu_access, drivers/dma-buf/dma-buf.c:
 *   END without START, a second START and mismatched flags are all accepted), so the uapi contract —
 *   "Prior to accessing the map, the client must call DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_START and the
 *   appropriate read/write flags… [then] DMA_BUF_SYNC_END and the same read/write flags"
 *   (include/uapi/linux/dma-buf.h) — is checked here: `cpu-access-unbracketed`, `cpu-access-flags`,
 *   `cpu-sync-end-missing`.
 * - `resvSnapshot` / `coveringUsage`: what a device saw in a buffer's resv when it relied on implicit sync
 *   (waitResv, SYNC START), so a race can be told apart by the usage the writer's fence had there.
 *   Taken at the wait, not at the race: a signalled fence's slot is reused by the next add
 *   (dma_resv_add_fence replaces signalled fences in place), so by the time a consumer reads, the
 *   producer's BOOKKEEP fence is often gone from the resv.
 */

import { dmaFenceGetStatus, dmaFencePut, type FenceHandle, type FenceTable } from '../kernel/dma-fence.js';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResv,
  type DmaResvUsage,
  dmaResvGetFences,
} from '../kernel/dma-resv.js';
import type { HbShared } from './hb.js';

export type CpuAccessFlags = 'read' | 'write' | 'rw';

/** A misuse for the runtime to report (`ControlPlane.misuse` arguments). */
export interface SyncMisuse {
  rule: string;
  message: string;
  objects: Record<string, string | number>;
  site: string;
  hint: string;
}

const START = (f: CpuAccessFlags) => `DMA_BUF_SYNC_START|${f === 'rw' ? 'RW' : f.toUpperCase()}`;
const END = (f: CpuAccessFlags) => `DMA_BUF_SYNC_END|${f === 'rw' ? 'RW' : f.toUpperCase()}`;

/** Open brackets of one device's CPU, by buffer id. */
export class CpuBrackets {
  private readonly open = new Map<number, { flags: CpuAccessFlags; dirty: boolean }>();

  /** SYNC START. A second START on an open bracket re-opens it (the kernel accepts it); CPU writes not yet ended stay dirty. */
  start(bufferId: number, flags: CpuAccessFlags): void {
    const b = this.open.get(bufferId);
    this.open.set(bufferId, { flags, dirty: b?.dirty ?? false });
  }

  /** SYNC END: closes the bracket; END with other flags than its START is `cpu-access-flags`. */
  end(bufferId: number, flags: CpuAccessFlags): SyncMisuse | null {
    const b = this.open.get(bufferId);
    this.open.delete(bufferId);
    if (b === undefined || b.flags === flags) return null;
    return {
      rule: 'cpu-access-flags',
      message: `${END(flags)} on buffer ${bufferId} closes a bracket opened with ${START(b.flags)}`,
      objects: { ino: bufferId, start: b.flags, end: flags },
      site: `end-${b.flags}-${flags}`,
      hint: `end CPU access with the flags it started with (${END(b.flags)}): the uapi requires the same read/write flags, and the exporter's cache maintenance follows them`,
    };
  }

  /** Is a START bracket open on the buffer? */
  inBracket(bufferId: number): boolean {
    return this.open.has(bufferId);
  }

  /** A CPU read or write of the buffer: outside any bracket, or against the bracket's flags. */
  access(bufferId: number, write: boolean, op: string): SyncMisuse | null {
    const b = this.open.get(bufferId);
    const what = write ? 'write' : 'read';
    if (b === undefined) {
      return {
        rule: 'cpu-access-unbracketed',
        message: `CPU ${op} of buffer ${bufferId} outside a DMA_BUF_IOCTL_SYNC START/END bracket`,
        objects: { ino: bufferId, op },
        site: op,
        hint: `call DMA_BUF_IOCTL_SYNC(${START(write ? 'write' : 'read')}) before the CPU ${what}s the mapping and ${END(write ? 'write' : 'read')} after: without them the non-coherent CPU cache serves or keeps stale lines`,
      };
    }
    if (write) b.dirty = true;
    if (b.flags === 'rw' || b.flags === what) return null;
    return {
      rule: 'cpu-access-flags',
      message: `CPU ${op} of buffer ${bufferId} inside a bracket opened with ${START(b.flags)}`,
      objects: { ino: bufferId, op, start: b.flags },
      site: `${op}-in-${b.flags}`,
      hint: `open the bracket with the access the CPU makes (${START(write ? 'write' : 'read')}, or RW for both): START(${b.flags.toUpperCase()}) ${write ? 'neither waits for the buffer’s readers nor expects dirty lines' : 'does not invalidate the CPU cache for reading'}`,
    };
  }

  /** The buffer is handed to others (sent on a link) while CPU writes of an open bracket are not yet ended. */
  published(bufferId: number): SyncMisuse | null {
    const b = this.open.get(bufferId);
    if (b === undefined || !b.dirty) return null;
    return {
      rule: 'cpu-sync-end-missing',
      message: `buffer ${bufferId} was published with CPU writes still inside an open ${START(b.flags)} bracket (no SYNC END)`,
      objects: { ino: bufferId, start: b.flags },
      site: 'send',
      hint: `call DMA_BUF_IOCTL_SYNC(${END(b.flags)}) after the CPU writes and before signalling the fence or sending the frame: END writes the dirty CPU cache lines back, so devices read what the CPU wrote`,
    };
  }
}

/** One device fence in a buffer's resv, as a waiter saw it. */
export interface ResvSeen {
  /** The fence's device (its timeline's device index). */
  tid: number;
  /** The lowest usage the fence had in the resv (a fence may sit in two slots: WRITE and READ). */
  usage: DmaResvUsage;
  fence: FenceHandle;
  /** The HB clock of `tid` the fence released when it signalled; -1 when it was still pending. */
  clock: number;
}

/**
 * Every device fence in the resv, of any usage, signalled or not, with the lowest usage it has (a fence may
 * sit in two slots, WRITE and READ). One query of every usage class; a waiter takes one per wait.
 */
export function resvSnapshot(
  obj: DmaResv,
  t: FenceTable,
  hb: HbShared,
  deviceOf: (f: FenceHandle) => number,
): ResvSeen[] {
  const seen: ResvSeen[] = [];
  const note = (f: FenceHandle, usage: DmaResvUsage, signalled: boolean): void => {
    for (const e of seen) {
      if (e.fence !== f) continue;
      if (usage < e.usage) e.usage = usage;
      return;
    }
    const tid = deviceOf(f);
    if (tid < 0) return;
    seen.push({ tid, usage, fence: f, clock: signalled ? hb.fenceClockOf(t.slotIndexOf(f), tid) : -1 });
  };
  const pending = dmaResvGetFences(obj, DMA_RESV_USAGE_BOOKKEEP, (f, u) => note(f, u, true));
  for (const e of pending) {
    note(e.fence, e.usage, false);
    dmaFencePut(t, e.fence);
  }
  return seen;
}

/**
 * The lowest usage with which a fence of device `tid` that covers its access at HB clock `clock` (a fence
 * it signalled at or after that access, or one still pending) sat in the snapshot; null when none did.
 * A fence pending at the snapshot is looked at again now: signalled since, its clock decides; freed, it
 * cannot be told and does not count.
 */
export function coveringUsage(
  seen: readonly ResvSeen[],
  tid: number,
  clock: number,
  t: FenceTable,
  hb: HbShared,
): DmaResvUsage | null {
  let best: DmaResvUsage | null = null;
  for (const e of seen) {
    if (e.tid !== tid || (best !== null && e.usage >= best)) continue;
    let c = e.clock;
    if (c < 0) {
      if (!t.isLive(e.fence)) continue;
      c =
        dmaFenceGetStatus(t, e.fence) === 0
          ? Number.MAX_SAFE_INTEGER
          : (hb.fenceClock(t.slotIndexOf(e.fence))[tid] ?? 0);
    }
    if (c >= clock) best = e.usage;
  }
  return best;
}

export function usageName(u: DmaResvUsage): string {
  return ['KERNEL', 'WRITE', 'READ', 'BOOKKEEP'][u] ?? String(u);
}

const DOWNGRADE_HINT =
  'add the fence of a job that writes the buffer as DMA_RESV_USAGE_WRITE (implicit readers wait only for WRITE fences); READ is for jobs that only read it';

/**
 * `resv-usage-downgrade`, the device's side (catalog class 9): the fences one device added to each
 * buffer's resv, with the usage it asked for, and its writes.
 *
 * The kernel never demotes a fence: dma_resv_add_fence (drivers/dma-buf/dma-resv.c) replaces a slot of
 * the same context in place only when `old_usage >= usage` (and the new fence is not earlier), so adding
 * a WRITE fence again as READ appends a second, READ slot and the WRITE one stays ("fences can never be
 * degraded, e.g. a fence with DMA_RESV_USAGE_WRITE could become DMA_RESV_USAGE_READ", the comment on
 * enum dma_resv_usage in include/linux/dma-resv.h). src/kernel/dma-resv.ts does the same. So the harm is
 * a write fence that was only ever added as READ; the WRITE-then-READ re-add is reported as the same
 * misunderstanding even though readers still wait.
 */
export class ResvUsageCheck {
  /** Buffer id → this device's fences still pending there → the lowest usage it added each with. */
  private readonly adds = new Map<number, Map<FenceHandle, DmaResvUsage>>();
  /** Buffer id → the seqno of this device's latest fence when it last wrote the buffer. */
  private readonly lastWriteSeqno = new Map<number, number>();

  constructor(
    private readonly t: FenceTable,
    /** This device's fence context: only its own fences are its to add right. */
    private readonly context: number,
    private readonly fenceName: (f: FenceHandle) => string,
  ) {}

  /** This device's pending fences on the buffer (signalled and freed ones dropped). */
  private pending(bufferId: number): Map<FenceHandle, DmaResvUsage> | undefined {
    const m = this.adds.get(bufferId);
    if (m === undefined) return undefined;
    for (const f of m.keys()) if (!this.t.isLive(f) || dmaFenceGetStatus(this.t, f) !== 0) m.delete(f);
    if (m.size > 0) return m;
    this.adds.delete(bufferId);
    return undefined;
  }

  /** The device adds `fence` to the buffer's resv with `usage`. */
  add(bufferId: number, fence: FenceHandle, usage: DmaResvUsage): SyncMisuse | null {
    const t = this.t;
    if (!t.isLive(fence) || t.contextOf(fence) !== this.context || dmaFenceGetStatus(t, fence) !== 0) return null;
    const m = this.pending(bufferId) ?? new Map<FenceHandle, DmaResvUsage>();
    this.adds.set(bufferId, m);
    const before = m.get(fence);
    m.set(fence, before === undefined || usage < before ? usage : before);
    if (usage !== DMA_RESV_USAGE_READ) return null;
    const name = this.fenceName(fence);
    if (before !== undefined && before <= DMA_RESV_USAGE_WRITE) {
      return {
        rule: 'resv-usage-downgrade',
        message: `added ${name} to buffer ${bufferId} as READ after adding it as ${usageName(before)}: a fence cannot be downgraded (the resv keeps its ${usageName(before)} slot and gets a second, READ one)`,
        objects: { ino: bufferId, fence: name },
        site: 'resv-add-write-then-read',
        hint: DOWNGRADE_HINT,
      };
    }
    const wrote = this.lastWriteSeqno.get(bufferId);
    if (wrote !== undefined && wrote >= t.seqnoOf(fence) && !hasWriteUsage(m)) {
      return {
        rule: 'resv-usage-downgrade',
        message: `added ${name} to buffer ${bufferId} as READ, but it wrote the buffer after creating that fence: the next reader will not wait for it`,
        objects: { ino: bufferId, fence: name },
        site: 'resv-add-read-after-write',
        hint: DOWNGRADE_HINT,
      };
    }
    return null;
  }

  /** The device writes the buffer; `seqno` is its latest fence's. */
  write(bufferId: number, seqno: number): SyncMisuse | null {
    const m = this.pending(bufferId);
    // Covered by a WRITE fence of this device already in the resv (a render pass with its own fence): a
    // later fence added as READ (the pass that reads the result back) is no downgrade of this write.
    if (m !== undefined && hasWriteUsage(m)) return null;
    this.lastWriteSeqno.set(bufferId, seqno);
    if (m === undefined) return null;
    // A fence of this device pending now signals after this write: it covers it.
    for (const [f, u] of m) {
      if (u !== DMA_RESV_USAGE_READ) continue;
      const name = this.fenceName(f);
      return {
        rule: 'resv-usage-downgrade',
        message: `wrote buffer ${bufferId} while its pending fence ${name} sits in the buffer's resv only as READ: readers that wait for WRITE fences will not wait for this write`,
        objects: { ino: bufferId, fence: name },
        site: 'write-under-read-fence',
        hint: DOWNGRADE_HINT,
      };
    }
    return null;
  }
}

function hasWriteUsage(m: ReadonlyMap<FenceHandle, DmaResvUsage>): boolean {
  for (const u of m.values()) if (u <= DMA_RESV_USAGE_WRITE) return true;
  return false;
}
