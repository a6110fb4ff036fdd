// Implicit sync through a dma-buf's reservation object, seen from userspace: EXPORT_SYNC_FILE and
// IMPORT_SYNC_FILE (kernel-semantics §2.3), poll() on the dma-buf fd (§2.4), the fence wait of SYNC START
// (§2.5, §11 A4), resv slot counts (§11 A9) and vgem's fences (§11 A10, vgem_fence.c). Fences come from
// sw_sync timelines (root) and vgem. Orderings are forced: a signal is triggered from the event loop while
// an async syscall waits, never raced against a sleep.
import { describe, expect, it } from 'vitest';
import { type DmaBuf, dmaBufGet, dmaBufPut } from '../../src/kernel/dma-buf.js';
import {
  dmaFenceContextAlloc,
  dmaFenceDriverName,
  dmaFenceGetStatus,
  dmaFenceInit,
  dmaFencePut,
  dmaFenceSignal,
  dmaFenceTimelineName,
  type FenceHandle,
} from '../../src/kernel/dma-fence.js';
import { dmaFenceUnwrapForEach } from '../../src/kernel/dma-fence-unwrap.js';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  type DmaResvUsage,
  dmaResvAddFence,
  dmaResvLock,
  dmaResvNumFences,
  dmaResvReserveFences,
  dmaResvUnlock,
} from '../../src/kernel/dma-resv.js';
import { EBUSY, EFAULT, EINTR, EINVAL, ENOENT, ETIMEDOUT, errnoName, isErr } from '../../src/kernel/errno.js';
import { Kernel, type KernelOptions } from '../../src/kernel/kernel.js';
import type { Process } from '../../src/kernel/process.js';
import { SW_SYNC_PATH } from '../../src/kernel/sw-sync.js';
import { syncFileGetFence } from '../../src/kernel/sync-file.js';
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  DMA_HEAP_IOCTL_ALLOC,
  DRM_IOCTL_PRIME_FD_TO_HANDLE,
  DRM_IOCTL_VGEM_FENCE_ATTACH,
  DRM_IOCTL_VGEM_FENCE_SIGNAL,
  O_CLOEXEC,
  O_RDWR,
  POLLIN,
  POLLOUT,
  type PollFd,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  VGEM_FENCE_WRITE,
} from '../../src/kernel/uapi.js';
import { VGEM_DEVICE_PATH } from '../../src/kernel/vgem.js';
import { mockOps } from '../fixtures/mock-fence-ops.js';

const MiB = 1 << 20;
const PAGE = 4096;
const BUFINFO = '/sys/kernel/debug/dma_buf/bufinfo';
const R = DMA_BUF_SYNC_READ;
const W = DMA_BUF_SYNC_WRITE;

/** A kernel whose synchronous fence waits give up after 50 ms (hung-task budget). */
function boot(opts: KernelOptions = {}): Kernel {
  return new Kernel({
    memory: { systemBytes: 8 * MiB, cmaBytes: 8 * MiB, carveoutBytes: 8 * MiB },
    hungTaskTimeoutMs: 50,
    ...opts,
  });
}

function root(k: Kernel, name = 'implicit'): Process {
  return k.createProcess({ name, uid: 0, gid: 0 });
}

function ok(ret: number, what: string): void {
  if (ret !== 0) throw new Error(`${what}: ${errnoName(ret)}`);
}

/** A system-heap dma-buf fd. */
function alloc(p: Process, len = PAGE): number {
  const heap = p.open('/dev/dma_heap/system', O_RDWR);
  if (heap < 0) throw new Error(`open heap: ${errnoName(heap)}`);
  const a = { len, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
  ok(p.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, a), 'ALLOC');
  p.close(heap);
  return a.fd;
}

/** A new sw_sync timeline (named after the process's comm). */
function timeline(p: Process): number {
  const fd = p.open(SW_SYNC_PATH, O_RDWR);
  if (fd < 0) throw new Error(`open sw_sync: ${errnoName(fd)}`);
  return fd;
}

/** A sync_file fd for point `value` on timeline `tl`. */
function point(p: Process, tl: number, value: number): number {
  const d = { value, name: 'pt', fence: 0 };
  ok(p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d), 'CREATE_FENCE');
  return d.fence;
}

function inc(p: Process, tl: number, by = 1): void {
  ok(p.ioctl(tl, SW_SYNC_IOC_INC, by), 'INC');
}

function importSync(p: Process, buf: number, syncFd: number, flags: number): number {
  return p.ioctl(buf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, { flags, fd: syncFd });
}

function exportSync(p: Process, buf: number, flags: number): number {
  const a = { flags, fd: 0 };
  ok(p.ioctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, a), `EXPORT_SYNC_FILE(${flags})`);
  return a.fd;
}

/** SYNC_IOC_FILE_INFO's count query (num_fences = 0): name, status of the top fence, leaf count. */
function fileInfo(p: Process, fd: number): { name: string; status: number; num_fences: number } {
  const q = { name: '', status: 0, flags: 0, num_fences: 0, pad: 0, sync_fence_info: 0 };
  ok(p.ioctl(fd, SYNC_IOC_FILE_INFO, q), 'FILE_INFO');
  return { name: q.name, status: q.status, num_fences: q.num_fences };
}

interface Leaf {
  driver: string;
  timeline: string;
  status: number;
}

/** The leaves of a sync_file's fence, read kernel-side (sync_file_get_fence + dma_fence_unwrap). */
function leaves(k: Kernel, p: Process, fd: number): Leaf[] {
  const t = k.fences;
  return k.runAs(p, () => {
    const f = syncFileGetFence(k, fd);
    if (f === null) throw new Error(`fd ${fd} is not a sync_file`);
    const out = [...dmaFenceUnwrapForEach(t, f)].map((l) => ({
      driver: dmaFenceDriverName(t, l),
      timeline: dmaFenceTimelineName(t, l),
      status: dmaFenceGetStatus(t, l),
    }));
    dmaFencePut(t, f);
    return out;
  });
}

/** Run `fn` on the dma-buf behind `fd` (dma_buf_get / dma_buf_put as the process). */
function withBuf<T>(k: Kernel, p: Process, fd: number, fn: (b: DmaBuf) => T): T {
  return k.runAs(p, () => {
    const b = dmaBufGet(k, fd);
    if (isErr(b)) throw new Error(`dma_buf_get: ${errnoName(b)}`);
    try {
      return fn(b);
    } finally {
      dmaBufPut(b);
    }
  });
}

function numFences(k: Kernel, p: Process, fd: number): number {
  return withBuf(k, p, fd, (b) => dmaResvNumFences(b.resv));
}

/** Add a kernel-side fence (usages userspace cannot import: KERNEL, BOOKKEEP). */
function addKernelFence(k: Kernel, p: Process, fd: number, f: FenceHandle, usage: DmaResvUsage): void {
  withBuf(k, p, fd, (b) => {
    ok(dmaResvLock(b.resv, null), 'dma_resv_lock');
    ok(dmaResvReserveFences(b.resv, 1), 'reserve');
    ok(dmaResvAddFence(b.resv, f, usage), 'add');
    dmaResvUnlock(b.resv);
  });
}

function mockFence(k: Kernel): FenceHandle {
  const f = dmaFenceInit(k.fences, mockOps, dmaFenceContextAlloc(k.fences, 1), 1);
  if (f < 0) throw new Error(`dma_fence_init: ${f}`);
  return f;
}

function pollNow(p: Process, fd: number): number {
  const fds: PollFd[] = [{ fd, events: POLLIN | POLLOUT }];
  p.poll(fds, 0);
  return fds[0]?.revents ?? -1;
}

function sync(p: Process, buf: number, flags: number): number {
  return p.ioctl(buf, DMA_BUF_IOCTL_SYNC, { flags });
}

function rules(k: Kernel): string[] {
  return k.warnings.map((w) => w.rule);
}

/** Every fd closed and every process gone: nothing of the fence or resv tables may remain. */
function expectNoLeaks(k: Kernel, ...procs: Process[]): void {
  for (const p of procs) p.exit();
  expect(k.fences.liveCount).toBe(0);
  expect(k.resvs.liveCount).toBe(0);
}

describe('DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE argument checks (§2.3)', () => {
  it.each([
    ['neither READ nor WRITE', 0],
    ['END', DMA_BUF_SYNC_END],
    ['READ|END', R | DMA_BUF_SYNC_END],
    ['WRITE|8', W | 8],
    ['bit 31', R | 0x8000_0000],
  ])('flags %s → -EINVAL for export and import, and nothing changes', (_name, flags) => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    const pt = point(p, tl, 1);
    const fdsBefore = p.files.fds().length;
    const a = { flags, fd: 0 };
    expect(p.ioctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, a)).toBe(-EINVAL);
    expect(a.fd).toBe(0);
    expect(p.files.fds().length).toBe(fdsBefore);
    expect(importSync(p, buf, pt, flags)).toBe(-EINVAL);
    expect(numFences(k, p, buf)).toBe(0);
    expectNoLeaks(k, p);
  });

  it('a NULL argument is -EFAULT for both', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    expect(p.ioctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, null)).toBe(-EFAULT);
    expect(p.ioctl(buf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, null)).toBe(-EFAULT);
    expectNoLeaks(k, p);
  });

  it('import of an fd that is not a sync_file (bad fd, /dev/null, a dma-buf) is -EINVAL', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const other = alloc(p);
    const devNull = p.open('/dev/null', O_RDWR);
    for (const fd of [-1, 999, devNull, other, buf]) expect(importSync(p, buf, fd, W)).toBe(-EINVAL);
    expect(numFences(k, p, buf)).toBe(0);
    expectNoLeaks(k, p);
  });
});

describe('EXPORT_SYNC_FILE: what a reader or writer would wait for', () => {
  it('no fences → the signalled stub (FILE_INFO "stub-stub0-0", status 1, A5)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    for (const flags of [R, W, DMA_BUF_SYNC_RW]) {
      const fd = exportSync(p, buf, flags);
      expect(fileInfo(p, fd)).toEqual({ name: 'stub-stub0-0', status: 1, num_fences: 1 });
      expect(leaves(k, p, fd)).toEqual([{ driver: 'stub', timeline: 'stub', status: 1 }]);
      expect(p.fdLink(fd)).toBe('anon_inode:sync_file');
      expect(p.files.isCloexec(fd)).toBe(true); // the fd is taken with O_CLOEXEC
    }
    expectNoLeaks(k, p);
  });

  it('one fence → that very fence; it signals when the timeline reaches it', () => {
    const k = boot();
    const p = root(k, 'tlA');
    const buf = alloc(p);
    const tl = timeline(p);
    const pt = point(p, tl, 5);
    expect(importSync(p, buf, pt, W)).toBe(0);
    const fd = exportSync(p, buf, R);
    const info = fileInfo(p, fd);
    expect(info.name).toBe(fileInfo(p, pt).name);
    expect(info.name).toMatch(/^sw_sync-tlA\d+-5$/);
    expect(info).toMatchObject({ status: 0, num_fences: 1 });
    inc(p, tl, 5);
    expect(fileInfo(p, fd).status).toBe(1);
    // Every fence signalled: the next export is the stub again.
    expect(fileInfo(p, exportSync(p, buf, W)).name).toBe('stub-stub0-0');
    expectNoLeaks(k, p);
  });

  it('several fences → a dma_fence_array (fresh context, seqno 1) that signals after all of them', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tl1, tl2] = [timeline(p), timeline(p)];
    expect(importSync(p, buf, point(p, tl1, 1), W)).toBe(0);
    expect(importSync(p, buf, point(p, tl2, 1), R)).toBe(0);
    const fd = exportSync(p, buf, W);
    const info = fileInfo(p, fd);
    expect(info.name).toMatch(/^dma_fence_array-unbound\d+-1$/);
    expect(info).toMatchObject({ status: 0, num_fences: 2 });
    expect(leaves(k, p, fd).map((l) => l.driver)).toEqual(['sw_sync', 'sw_sync']);
    inc(p, tl1);
    expect(fileInfo(p, fd).status).toBe(0);
    inc(p, tl2);
    expect(fileInfo(p, fd).status).toBe(1);
    expectNoLeaks(k, p);
  });

  it('READ export sees WRITE-and-lower fences; WRITE export sees READ-and-lower; BOOKKEEP never', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tlw, tlr] = [timeline(p), timeline(p)];
    const wpt = point(p, tlw, 1);
    const rpt = point(p, tlr, 1);
    expect(importSync(p, buf, wpt, W)).toBe(0);
    expect(importSync(p, buf, rpt, R)).toBe(0);
    const bookkeep = mockFence(k);
    addKernelFence(k, p, buf, bookkeep, DMA_RESV_USAGE_BOOKKEEP);
    expect(numFences(k, p, buf)).toBe(3);
    // A reader waits for the writer only.
    expect(fileInfo(p, exportSync(p, buf, R)).name).toBe(fileInfo(p, wpt).name);
    // A writer waits for both, never for BOOKKEEP.
    const bothFd = exportSync(p, buf, W);
    expect(fileInfo(p, bothFd).num_fences).toBe(2);
    expect(leaves(k, p, bothFd)).toEqual([
      { driver: 'sw_sync', timeline: 'implicit', status: 0 },
      { driver: 'sw_sync', timeline: 'implicit', status: 0 },
    ]);
    inc(p, tlw);
    inc(p, tlr);
    // Only the BOOKKEEP fence is pending now: both exports are the stub.
    expect(fileInfo(p, exportSync(p, buf, R)).name).toBe('stub-stub0-0');
    expect(fileInfo(p, exportSync(p, buf, DMA_BUF_SYNC_RW)).name).toBe('stub-stub0-0');
    dmaFenceSignal(k.fences, bookkeep);
    dmaFencePut(k.fences, bookkeep);
    expectNoLeaks(k, p);
  });

  it('a KERNEL fence is exported to readers and writers alike', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const kf = mockFence(k);
    addKernelFence(k, p, buf, kf, DMA_RESV_USAGE_KERNEL);
    for (const flags of [R, W]) {
      const fd = exportSync(p, buf, flags);
      expect(fileInfo(p, fd)).toMatchObject({ status: 0, num_fences: 1 });
      expect(leaves(k, p, fd)).toEqual([{ driver: 'mock', timeline: 'mock', status: 0 }]);
    }
    dmaFenceSignal(k.fences, kf);
    dmaFencePut(k.fences, kf);
    expectNoLeaks(k, p);
  });

  it('snapshot semantics: fences added after the export are not in the exported sync_file', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tl1, tl2] = [timeline(p), timeline(p)];
    const first = point(p, tl1, 1);
    expect(importSync(p, buf, first, W)).toBe(0);
    const snap = exportSync(p, buf, R);
    expect(importSync(p, buf, point(p, tl2, 1), W)).toBe(0);
    expect(fileInfo(p, snap)).toMatchObject({ name: fileInfo(p, first).name, num_fences: 1, status: 0 });
    inc(p, tl1);
    expect(fileInfo(p, snap).status).toBe(1); // though the buffer still has a pending writer
    expect(pollNow(p, buf)).toBe(0);
    expect(fileInfo(p, exportSync(p, buf, R)).num_fences).toBe(1);
    inc(p, tl2);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expectNoLeaks(k, p);
  });
});

describe('IMPORT_SYNC_FILE and resv slots (A9)', () => {
  it('a merged (array) sync_file adds each leaf, with the import usage', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tl1, tl2] = [timeline(p), timeline(p)];
    const m = { name: 'merged', fd2: point(p, tl2, 1), fence: 0, flags: 0, pad: 0 };
    expect(p.ioctl(point(p, tl1, 1), SYNC_IOC_MERGE, m)).toBe(0);
    expect(fileInfo(p, m.fence).num_fences).toBe(2);
    expect(importSync(p, buf, m.fence, R)).toBe(0);
    expect(numFences(k, p, buf)).toBe(2);
    const lines = (p.readFile(BUFINFO) as string).split('\n').filter((l) => l.includes(' fence:'));
    expect(lines).toEqual([
      '\tread fence:sw_sync implicit seq 1 unsignalled',
      '\tread fence:sw_sync implicit seq 1 unsignalled',
    ]);
    // READ usage: readers do not wait, writers wait for both.
    expect(pollNow(p, buf)).toBe(POLLIN);
    inc(p, tl1);
    expect(pollNow(p, buf)).toBe(POLLIN);
    inc(p, tl2);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expectNoLeaks(k, p);
  });

  it('a READ point, then a later WRITE point of the same timeline → 1 slot (the write replaces it)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), R)).toBe(0);
    expect(importSync(p, buf, point(p, tl, 2), W)).toBe(0);
    expect(numFences(k, p, buf)).toBe(1);
    expect((p.readFile(BUFINFO) as string).split('\n').filter((l) => l.includes(' fence:'))).toEqual([
      '\twrite fence:sw_sync implicit seq 2 unsignalled',
    ]);
    expectNoLeaks(k, p);
  });

  it('a WRITE point, then a later READ point of the same timeline → 2 slots (no demotion)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), W)).toBe(0);
    expect(importSync(p, buf, point(p, tl, 2), R)).toBe(0);
    expect(numFences(k, p, buf)).toBe(2);
    expect((p.readFile(BUFINFO) as string).split('\n').filter((l) => l.includes(' fence:'))).toEqual([
      '\twrite fence:sw_sync implicit seq 1 unsignalled',
      '\tread fence:sw_sync implicit seq 2 unsignalled',
    ]);
    // A reader still waits for point 1.
    expect(fileInfo(p, exportSync(p, buf, R)).name).toMatch(/-1$/);
    expectNoLeaks(k, p);
  });

  it('as on 6.12 (no debug slots): a new context takes a signalled slot in place, another stays listed', () => {
    const k = boot({ debugResvSlots: false });
    const p = root(k);
    const buf = alloc(p);
    const [tlA, tlB, tlC] = [timeline(p), timeline(p), timeline(p)];
    expect(importSync(p, buf, point(p, tlA, 1), R)).toBe(0);
    expect(importSync(p, buf, point(p, tlB, 1), R)).toBe(0);
    inc(p, tlA);
    inc(p, tlB);
    expect(numFences(k, p, buf)).toBe(2);
    expect(importSync(p, buf, point(p, tlC, 1), R)).toBe(0);
    expect(numFences(k, p, buf)).toBe(2);
    expect((p.readFile(BUFINFO) as string).split('\n').filter((l) => l.includes(' fence:'))).toEqual([
      '\tread fence:sw_sync implicit seq 1 unsignalled',
      '\tread fence:sw_sync implicit seq 1 signalled',
    ]);
    expectNoLeaks(k, p);
  });
});

describe('poll() on a dma-buf fd (§2.4)', () => {
  it('no fences: POLLIN and POLLOUT at once', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expectNoLeaks(k, p);
  });

  it('a pending write fence blocks both; a pending read fence blocks only POLLOUT', () => {
    const k = boot();
    const p = root(k);
    const [bw, br] = [alloc(p), alloc(p)];
    const tl = timeline(p);
    expect(importSync(p, bw, point(p, tl, 1), W)).toBe(0);
    expect(importSync(p, br, point(p, tl, 1), R)).toBe(0);
    expect(pollNow(p, bw)).toBe(0);
    expect(pollNow(p, br)).toBe(POLLIN);
    const fds: PollFd[] = [
      { fd: bw, events: POLLIN },
      { fd: br, events: POLLIN },
      { fd: br, events: POLLOUT },
    ];
    expect(p.poll(fds, 0)).toBe(1);
    expect(fds.map((f) => f.revents)).toEqual([0, POLLIN, 0]);
    inc(p, tl);
    expect(pollNow(p, bw)).toBe(POLLIN | POLLOUT);
    expect(pollNow(p, br)).toBe(POLLIN | POLLOUT);
    expectNoLeaks(k, p);
  });

  it('BOOKKEEP fences never block poll', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const f = mockFence(k);
    addKernelFence(k, p, buf, f, DMA_RESV_USAGE_BOOKKEEP);
    expect(numFences(k, p, buf)).toBe(1);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    dmaFenceSignal(k.fences, f);
    dmaFencePut(k.fences, f);
    expectNoLeaks(k, p);
  });

  it('pollAsync wakes when the fence signals from the event loop', async () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), W)).toBe(0);
    const order: string[] = [];
    setImmediate(() => {
      order.push('signal');
      inc(p, tl);
    });
    const fds: PollFd[] = [{ fd: buf, events: POLLIN }];
    const n = await p.pollAsync(fds, -1);
    order.push('woke');
    expect(n).toBe(1);
    expect(fds[0]?.revents).toBe(POLLIN);
    expect(order).toEqual(['signal', 'woke']);
    expectNoLeaks(k, p);
  });

  it('POLLIN with no timeout is not ended by a read fence signalling while a writer is still pending', async () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tlw, tlr] = [timeline(p), timeline(p)];
    expect(importSync(p, buf, point(p, tlw, 1), W)).toBe(0);
    const rpt = point(p, tlr, 1);
    expect(importSync(p, buf, rpt, R)).toBe(0);
    let settled = false;
    const fds: PollFd[] = [{ fd: buf, events: POLLIN }];
    const polling = p.pollAsync(fds, -1).then((n) => {
      settled = true;
      return n;
    });
    setImmediate(() => inc(p, tlr));
    // Wait until the read point has signalled, then give the buffer's poll every chance to wake.
    expect(await p.pollAsync([{ fd: rpt, events: POLLIN }], -1)).toBe(1);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    // poll(-1) returns only once a requested event is ready: it must still be pending here.
    expect(settled ? { returned: await polling, revents: fds[0]?.revents } : 'pending').toBe('pending');
    inc(p, tlw);
    expect(await polling).toBe(1);
    expect(fds[0]?.revents).toBe(POLLIN);
    expectNoLeaks(k, p);
  });
});

describe('DMA_BUF_IOCTL_SYNC START waits for conflicting fences (§2.5, A4)', () => {
  it('START|READ does not wait for a pending read fence', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), R)).toBe(0);
    expect(sync(p, buf, DMA_BUF_SYNC_START | R)).toBe(0);
    expect(sync(p, buf, DMA_BUF_SYNC_END | R)).toBe(0);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k, p);
  });

  it.each([
    ['START|READ, pending write fence', R, W],
    ['START|WRITE, pending write fence', W, W],
    ['START|WRITE, pending read fence', W, R],
    ['START|RW, pending read fence', DMA_BUF_SYNC_RW, R],
  ])('%s: waits (the async twin completes after a same-thread signal)', async (_name, dir, usage) => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), usage)).toBe(0);
    const order: string[] = [];
    setImmediate(() => {
      order.push('signal');
      inc(p, tl);
    });
    const ret = await p.ioctlAsync(buf, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | dir });
    order.push('returned');
    expect(ret).toBe(0);
    expect(order).toEqual(['signal', 'returned']);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k, p);
  });

  it.each([
    ['START|READ, pending write fence', R, W],
    ['START|WRITE, pending read fence', W, R],
  ])('%s, synchronously on a fence never signalled: the hung-task budget ends it with -EINTR', (_n, dir, usage) => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    expect(importSync(p, buf, point(p, tl, 1), usage)).toBe(0);
    expect(sync(p, buf, DMA_BUF_SYNC_START | dir)).toBe(-EINTR);
    expect(rules(k)).toEqual(['hung-task']);
    expectNoLeaks(k, p);
  });

  it('END never waits, whatever is pending (A4)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const [tl1, tl2] = [timeline(p), timeline(p)];
    expect(importSync(p, buf, point(p, tl1, 1), W)).toBe(0);
    expect(importSync(p, buf, point(p, tl2, 1), R)).toBe(0);
    for (const dir of [R, W, DMA_BUF_SYNC_RW]) expect(sync(p, buf, DMA_BUF_SYNC_END | dir)).toBe(0);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k, p);
  });

  it('START on fences that signalled with an error returns 0 (A4)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const tl = timeline(p);
    const pt = point(p, tl, 1);
    expect(importSync(p, buf, pt, W)).toBe(0);
    p.close(tl); // pending points end with -ENOENT
    expect(fileInfo(p, pt).status).toBe(-ENOENT);
    expect(sync(p, buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW)).toBe(0);
    expect(k.warnings).toEqual([]);
    expectNoLeaks(k, p);
  });
});

describe('vgem fences (A10)', () => {
  /** A buffer imported into vgem: the drm fd and the handle. */
  function vgemImport(
    p: Process,
    buf: number,
    drm = p.open(VGEM_DEVICE_PATH, O_RDWR),
  ): { drm: number; handle: number } {
    if (drm < 0) throw new Error(`open vgem: ${errnoName(drm)}`);
    const h = { fd: buf, flags: 0, handle: 0 };
    ok(p.ioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, h), 'PRIME_FD_TO_HANDLE');
    return { drm, handle: h.handle };
  }

  function attach(p: Process, drm: number, handle: number, flags: number, pad = 0): { ret: number; id: number } {
    const a = { handle, flags, out_fence: 0, pad };
    const ret = p.ioctl(drm, DRM_IOCTL_VGEM_FENCE_ATTACH, a);
    return { ret, id: a.out_fence };
  }

  function signal(p: Process, drm: number, fence: number, flags = 0): number {
    return p.ioctl(drm, DRM_IOCTL_VGEM_FENCE_SIGNAL, { fence, flags });
  }

  function fenceLines(p: Process): string[] {
    return (p.readFile(BUFINFO) as string).split('\n').filter((l) => l.includes(' fence:'));
  }

  it('attach READ and WRITE fences, seen in bufinfo; conflicting pending fences are -EBUSY', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const { drm, handle } = vgemImport(p, buf);
    const r1 = attach(p, drm, handle, 0);
    const r2 = attach(p, drm, handle, 0);
    expect([r1.ret, r2.ret]).toEqual([0, 0]); // readers do not conflict
    expect(r2.id).not.toBe(r1.id);
    expect(fenceLines(p)).toEqual([
      '\tread fence:vgem unbound seq 1 unsignalled',
      '\tread fence:vgem unbound seq 1 unsignalled',
    ]);
    // Each fence has a context of its own: a writer's export is an array of both.
    const bothFd = exportSync(p, buf, W);
    expect(fileInfo(p, bothFd).num_fences).toBe(2);
    expect(leaves(k, p, bothFd)).toEqual([
      { driver: 'vgem', timeline: 'unbound', status: 0 },
      { driver: 'vgem', timeline: 'unbound', status: 0 },
    ]);
    expect(fileInfo(p, bothFd).name).toMatch(/^dma_fence_array-unbound\d+-1$/);
    expect(attach(p, drm, handle, VGEM_FENCE_WRITE).ret).toBe(-EBUSY); // readers pending
    expect(signal(p, drm, r1.id)).toBe(0);
    expect(attach(p, drm, handle, VGEM_FENCE_WRITE).ret).toBe(-EBUSY); // one reader still pending
    expect(signal(p, drm, r2.id)).toBe(0);
    const w = attach(p, drm, handle, VGEM_FENCE_WRITE);
    expect(w.ret).toBe(0);
    expect(fenceLines(p)).toContain('\twrite fence:vgem unbound seq 1 unsignalled');
    expect(attach(p, drm, handle, 0).ret).toBe(-EBUSY); // a reader waits for the pending writer
    expect(attach(p, drm, handle, VGEM_FENCE_WRITE).ret).toBe(-EBUSY);
    expect(pollNow(p, buf)).toBe(0);
    expect(signal(p, drm, w.id)).toBe(0);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expect(fenceLines(p)).toContain('\twrite fence:vgem unbound seq 1 signalled');
    expectNoLeaks(k, p);
  });

  it('attach with unknown flags or a non-zero pad is -EINVAL; an unknown handle is -ENOENT', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const { drm, handle } = vgemImport(p, buf);
    expect(attach(p, drm, handle, 2).ret).toBe(-EINVAL);
    expect(attach(p, drm, handle, VGEM_FENCE_WRITE | 0x100).ret).toBe(-EINVAL);
    expect(attach(p, drm, handle, 0, 1).ret).toBe(-EINVAL);
    expect(attach(p, drm, handle + 7, 0).ret).toBe(-ENOENT);
    expect(attach(p, drm, 0, VGEM_FENCE_WRITE).ret).toBe(-ENOENT);
    expect(attach(p, drm, handle + 7, 2).ret).toBe(-EINVAL); // flags are checked before the handle
    expect(numFences(k, p, buf)).toBe(0);
    expect(k.fences.liveCount).toBe(0);
    expectNoLeaks(k, p);
  });

  it('signal: 0, then -ENOENT for the same id; unknown id -ENOENT; flags -EINVAL (the id stays valid)', () => {
    const k = boot();
    const p = root(k);
    const buf = alloc(p);
    const { drm, handle } = vgemImport(p, buf);
    const w = attach(p, drm, handle, VGEM_FENCE_WRITE);
    expect(w.ret).toBe(0);
    expect(signal(p, drm, w.id, 1)).toBe(-EINVAL);
    expect(pollNow(p, buf)).toBe(0); // still pending
    expect(signal(p, drm, w.id + 100)).toBe(-ENOENT);
    expect(signal(p, drm, w.id + 100, 1)).toBe(-EINVAL); // flags before the id
    expect(signal(p, drm, w.id)).toBe(0);
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expect(signal(p, drm, w.id)).toBe(-ENOENT);
    expectNoLeaks(k, p);
  });

  it('a fence signals itself after fenceTimeoutMs; signalling it afterwards is -ETIMEDOUT', async () => {
    const k = boot();
    k.vgem.fenceTimeoutMs = 20;
    const p = root(k);
    const buf = alloc(p);
    const { drm, handle } = vgemImport(p, buf);
    const w = attach(p, drm, handle, VGEM_FENCE_WRITE);
    expect(w.ret).toBe(0);
    const exported = exportSync(p, buf, R);
    expect(fileInfo(p, exported).status).toBe(0);
    // Wait for the fence itself: the timer is the only thing that can signal it.
    expect(await p.pollAsync([{ fd: exported, events: POLLIN }], -1)).toBe(1);
    expect(fileInfo(p, exported).status).toBe(1); // expired without an error
    expect(pollNow(p, buf)).toBe(POLLIN | POLLOUT);
    expect(signal(p, drm, w.id)).toBe(-ETIMEDOUT);
    expect(signal(p, drm, w.id)).toBe(-ENOENT);
    expectNoLeaks(k, p);
  });

  it('closing the DRM fd signals every fence of that file (and only those)', () => {
    const k = boot();
    const p = root(k);
    const [b1, b2] = [alloc(p), alloc(p)];
    const v1 = vgemImport(p, b1);
    const v2 = vgemImport(p, b2, v1.drm);
    const other = vgemImport(p, b1); // a second DRM file importing b1
    expect(attach(p, v1.drm, v1.handle, 0).ret).toBe(0);
    expect(attach(p, v2.drm, v2.handle, VGEM_FENCE_WRITE).ret).toBe(0);
    const otherRead = attach(p, other.drm, other.handle, 0);
    expect(otherRead.ret).toBe(0);
    const e1 = exportSync(p, b1, W);
    const e2 = exportSync(p, b2, W);
    expect(leaves(k, p, e1).map((l) => l.status)).toEqual([0, 0]);
    expect(fileInfo(p, e2).status).toBe(0);
    expect(p.close(v1.drm)).toBe(0);
    // The closed file's two fences signalled (without an error); the other file's read fence did not.
    expect(leaves(k, p, e1).map((l) => l.status)).toEqual([1, 0]);
    expect(fileInfo(p, e2).status).toBe(1);
    expect(pollNow(p, b2)).toBe(POLLIN | POLLOUT);
    expect(pollNow(p, b1)).toBe(POLLIN);
    expect(signal(p, other.drm, otherRead.id)).toBe(0);
    expect(pollNow(p, b1)).toBe(POLLIN | POLLOUT);
    expect(fileInfo(p, e1).status).toBe(1);
    expectNoLeaks(k, p);
  });
});

describe('leaks', () => {
  it('after a mixed workload and closing everything, no fence and no resv is left', async () => {
    const k = boot();
    const p = root(k);
    const q = root(k, 'other');
    const bufs = [alloc(p), alloc(p), alloc(q)];
    const [tl1, tl2] = [timeline(p), timeline(p)];
    const m = { name: 'm', fd2: point(p, tl2, 3), fence: 0, flags: 0, pad: 0 };
    expect(p.ioctl(point(p, tl1, 2), SYNC_IOC_MERGE, m)).toBe(0);
    expect(importSync(p, bufs[0] ?? -1, m.fence, W)).toBe(0);
    expect(importSync(p, bufs[1] ?? -1, point(p, tl1, 1), R)).toBe(0);
    const exported = [
      exportSync(p, bufs[0] ?? -1, W),
      exportSync(p, bufs[1] ?? -1, W),
      exportSync(p, bufs[0] ?? -1, R),
    ];
    const { drm } = (() => {
      const d = p.open(VGEM_DEVICE_PATH, O_RDWR);
      const h = { fd: bufs[1] ?? -1, flags: 0, handle: 0 };
      ok(p.ioctl(d, DRM_IOCTL_PRIME_FD_TO_HANDLE, h), 'PRIME_FD_TO_HANDLE');
      const a = { handle: h.handle, flags: 0, out_fence: 0, pad: 0 };
      ok(p.ioctl(d, DRM_IOCTL_VGEM_FENCE_ATTACH, a), 'FENCE_ATTACH');
      return { drm: d };
    })();
    setImmediate(() => {
      inc(p, tl1, 2);
      inc(p, tl2, 3);
    });
    // A reader of bufs[0] waits for both points of the merged write fence.
    expect(await p.ioctlAsync(bufs[0] ?? -1, DMA_BUF_IOCTL_SYNC, { flags: DMA_BUF_SYNC_START | R })).toBe(0);
    expect(fileInfo(p, exported[0] ?? -1).status).toBe(1);
    expect(exported.every((fd) => fd > 0)).toBe(true);
    expect(k.fences.liveCount).toBeGreaterThan(0);
    expect(k.resvs.liveCount).toBe(3);
    p.close(drm);
    expectNoLeaks(k, p, q);
    expect(k.memoryUsage().every((a) => a.freePages === a.totalPages)).toBe(true);
  });
});
