// sync_file and sw_sync from userspace: every errno path of drivers/dma-buf/sync_file.c and
// drivers/dma-buf/sw_sync.c (kernel-semantics §7, §8) and the real-kernel findings §11 A5–A8, C2, C3, one
// `it` each. Each test names the kernel function it mirrors. Nothing sleeps: orderings come from the ioctls
// themselves, and the asynchronous waits are woken by an ioctl queued on this same event loop.
import { describe, expect, it } from 'vitest';
import { type DmaFenceCb, dmaFenceAddCallback, dmaFencePut, type FenceHandle } from '../../src/kernel/dma-fence.js';
import { EACCES, EBADF, EFAULT, EINVAL, EMFILE, ENOENT, ENOTTY } from '../../src/kernel/errno.js';
import { Kernel } from '../../src/kernel/kernel.js';
import type { Process } from '../../src/kernel/process.js';
import { SW_SYNC_PATH } from '../../src/kernel/sw-sync.js';
import { syncFileGetFence } from '../../src/kernel/sync-file.js';
import {
  _IOWR,
  DMA_HEAP_IOCTL_ALLOC,
  O_CLOEXEC,
  O_RDWR,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  type PollFd,
  SW_SYNC_GET_DEADLINE,
  SW_SYNC_IOC_CREATE_FENCE,
  SW_SYNC_IOC_INC,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
  SYNC_IOC_SET_DEADLINE,
} from '../../src/kernel/uapi.js';

const MEM = { systemBytes: 8 << 20, cmaBytes: 8 << 20, carveoutBytes: 8 << 20 };
const INT_MAX = 0x7fff_ffff;

/** `struct sync_fence_info` as the kernel writes it into the caller's array. */
interface FenceInfo {
  obj_name: string;
  driver_name: string;
  status: number;
  flags: number;
  timestamp_ns: number;
}

/** `struct sync_file_info`; `sync_fence_info` is the user pointer (a JS array, or something bad). */
interface FileInfo {
  name: string;
  status: number;
  flags: number;
  num_fences: number;
  pad: number;
  sync_fence_info: unknown;
}

function newInfo(numFences = 0, ptr: unknown = []): FileInfo {
  return { name: '', status: 0, flags: 0, num_fences: numFences, pad: 0, sync_fence_info: ptr };
}

interface MergeArg {
  name: string;
  fd2: number;
  fence: number;
  flags: number;
  pad: number;
}

function mergeArg(fd2: number, name = 'merged'): MergeArg {
  return { name, fd2, fence: -1, flags: 0, pad: 0 };
}

/** One kernel, one root process ('tl', so every timeline it opens is named "tl"). */
class World {
  readonly k = new Kernel({ memory: MEM });
  readonly p: Process;

  constructor(comm = 'tl') {
    this.p = this.k.createProcess({ name: comm, uid: 0, gid: 0 });
  }

  /** sw_sync_timeline_create(): open the debugfs file. */
  timeline(): number {
    const fd = this.p.open(SW_SYNC_PATH, O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    return fd;
  }

  /** sw_sync_fence_create(): a sync_file fd for the point `value` on `tl`. */
  fence(tl: number, value: number): number {
    const d = { value, name: 'pt', fence: -1 };
    expect(this.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d)).toBe(0);
    expect(d.fence).toBeGreaterThanOrEqual(0);
    return d.fence;
  }

  inc(tl: number, by: number): void {
    expect(this.p.ioctl(tl, SW_SYNC_IOC_INC, by)).toBe(0);
  }

  /** sync_merge(). */
  merge(a: number, b: number, name = 'merged'): number {
    const m = mergeArg(b, name);
    expect(this.p.ioctl(a, SYNC_IOC_MERGE, m)).toBe(0);
    expect(m.fence).toBeGreaterThanOrEqual(0);
    return m.fence;
  }

  /** FILE_INFO with num_fences = 0: the top fence's status and the leaf count (sync.c's first call). */
  query(fd: number): FileInfo {
    const info = newInfo();
    expect(this.p.ioctl(fd, SYNC_IOC_FILE_INFO, info)).toBe(0);
    return info;
  }

  /** sync.c's sync_file_info(): count, then fetch every leaf. */
  info(fd: number): { info: FileInfo; leaves: FenceInfo[] } {
    const count = this.query(fd);
    const leaves: FenceInfo[] = [];
    const info = newInfo(count.num_fences, leaves);
    expect(this.p.ioctl(fd, SYNC_IOC_FILE_INFO, info)).toBe(0);
    expect(info.sync_fence_info).toBe(leaves);
    expect(leaves).toHaveLength(count.num_fences);
    return { info, leaves };
  }

  /** The fence behind a sync_file fd. The fd keeps it alive, so our reference is dropped at once. */
  handle(fd: number): FenceHandle {
    const h = this.k.runAs(this.p, () => syncFileGetFence(this.k, fd));
    expect(h).not.toBeNull();
    dmaFencePut(this.k.fences, h as FenceHandle);
    return h as FenceHandle;
  }

  /** One non-blocking poll for POLLIN: the revents. */
  revents(fd: number, events = POLLIN): number {
    const fds: PollFd[] = [{ fd, events }];
    this.p.poll(fds, 0);
    return fds[0]?.revents ?? -1;
  }

  /** The lowest free fd (dup returns it); a leaked reservation would push it up. */
  nextFd(): number {
    const fd = this.p.dup(0);
    expect(this.p.close(fd)).toBe(0);
    return fd;
  }

  /** Open /dev/null until the table is full (-EMFILE); the caller closes the returned fds. */
  fillFdTable(): number[] {
    const fds: number[] = [];
    for (;;) {
      const fd = this.p.open('/dev/null', O_RDWR);
      if (fd < 0) {
        expect(fd).toBe(-EMFILE);
        return fds;
      }
      fds.push(fd);
    }
  }

  /** A system-heap dma-buf fd (not a sync_file). */
  dmabuf(): number {
    const heap = this.p.open('/dev/dma_heap/system', O_RDWR);
    expect(heap).toBeGreaterThanOrEqual(0);
    const a = { len: 4096, fd: 0, fd_flags: O_RDWR | O_CLOEXEC, heap_flags: 0 };
    expect(this.p.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, a)).toBe(0);
    expect(this.p.close(heap)).toBe(0);
    return a.fd;
  }

  /** The leak check: close everything but stdio; no fence may remain and nothing may have warned. */
  closeAll(): void {
    for (const fd of this.p.files.fds()) if (fd > 2) expect(this.p.close(fd)).toBe(0);
    expect(this.k.fences.liveCount).toBe(0);
    expect(this.k.warnings).toEqual([]);
  }
}

// --- SYNC_IOC_MERGE: sync_file_ioctl_merge() -----------------------------------------------------

describe('SYNC_IOC_MERGE (sync_file.c sync_file_ioctl_merge)', () => {
  // sync_file.c: get_unused_fd_flags(O_CLOEXEC) → copy_from_user → flags||pad → sync_file_fdget(fd2) →
  // name[31] = 0 → sync_file_merge (dma_fence_unwrap_merge) → data.fence = fd → copy_to_user → fd_install.
  it('reserves the fd first: with a full fd table even bad flags or a NULL arg give -EMFILE (A7)', () => {
    const w = new World();
    const tl = w.timeline();
    const a = w.fence(tl, 1);
    const b = w.fence(tl, 2);
    const filler = w.fillFdTable();
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, { ...mergeArg(b), flags: 1 })).toBe(-EMFILE);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, null)).toBe(-EMFILE);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, mergeArg(-1))).toBe(-EMFILE);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, mergeArg(b))).toBe(-EMFILE);
    // One free slot is enough again.
    expect(w.p.close(filler.pop() ?? -1)).toBe(0);
    expect(w.merge(a, b)).toBeGreaterThan(2);
    w.closeAll();
  });

  it('a NULL (or missing) argument is -EFAULT and the reserved fd is given back (A7)', () => {
    const w = new World();
    const a = w.fence(w.timeline(), 1);
    const next = w.nextFd();
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, null)).toBe(-EFAULT);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, undefined)).toBe(-EFAULT);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE)).toBe(-EFAULT);
    expect(w.nextFd()).toBe(next);
    w.closeAll();
  });

  it('flags or pad are -EINVAL, checked before fd2 (flags=1 with fd2=-1 is -EINVAL, not -ENOENT) (A7)', () => {
    const w = new World();
    const a = w.fence(w.timeline(), 1);
    const next = w.nextFd();
    const bad = { ...mergeArg(-1), flags: 1 };
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, bad)).toBe(-EINVAL);
    expect(bad.fence).toBe(-1); // nothing copied back
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, { ...mergeArg(-1), pad: 1 })).toBe(-EINVAL);
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, { ...mergeArg(a), flags: 0x8000_0000 })).toBe(-EINVAL);
    // With both zero the same fd2 reaches the fd2 check.
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, mergeArg(-1))).toBe(-ENOENT);
    expect(w.nextFd()).toBe(next);
    w.closeAll();
  });

  it('fd2 that is not a sync_file (-1, closed, /dev/null, a dma-buf, a timeline) is -ENOENT, no fd leaked', () => {
    const w = new World();
    const tl = w.timeline();
    const a = w.fence(tl, 1);
    const devnull = w.p.open('/dev/null', O_RDWR);
    const dmabuf = w.dmabuf();
    const closed = w.fence(tl, 2);
    expect(w.p.close(closed)).toBe(0);
    const next = w.nextFd();
    for (const fd2 of [-1, closed, devnull, dmabuf, tl, 1 << 20]) {
      const m = mergeArg(fd2);
      expect(w.p.ioctl(a, SYNC_IOC_MERGE, m)).toBe(-ENOENT);
      expect(m.fence).toBe(-1);
    }
    expect(w.nextFd()).toBe(next);
    w.closeAll();
    expect(w.k.memoryUsage().every((u) => u.freePages === u.totalPages)).toBe(true);
  });

  it('MERGE on an fd that is not a sync_file is -ENOTTY (a closed fd -EBADF) (A7)', () => {
    const w = new World();
    const tl = w.timeline();
    const a = w.fence(tl, 1);
    const devnull = w.p.open('/dev/null', O_RDWR);
    const dmabuf = w.dmabuf();
    for (const fd of [devnull, tl, dmabuf]) expect(w.p.ioctl(fd, SYNC_IOC_MERGE, mergeArg(a))).toBe(-ENOTTY);
    expect(w.p.ioctl(1000, SYNC_IOC_MERGE, mergeArg(a))).toBe(-EBADF);
    w.closeAll();
  });

  it('the name is cut to 31 bytes (name[31] = 0) and becomes the sync_file name', () => {
    const w = new World();
    const tl = w.timeline();
    const long = 'abcdefghijklmnopqrstuvwxyz0123456789';
    const m = w.merge(w.fence(tl, 1), w.fence(tl, 2), long);
    expect(w.query(m).name).toBe(long.slice(0, 31));
    const exact = w.merge(m, m, 'x'.repeat(31));
    expect(w.query(exact).name).toBe('x'.repeat(31));
    w.closeAll();
  });

  it('the argument copied back carries the truncated name too (data.name[31] = 0 before copy_to_user)', () => {
    const w = new World();
    const tl = w.timeline();
    const arg = mergeArg(w.fence(tl, 2), 'N'.repeat(40));
    expect(w.p.ioctl(w.fence(tl, 1), SYNC_IOC_MERGE, arg)).toBe(0);
    expect(arg.name).toBe('N'.repeat(31));
    expect(arg.fence).toBeGreaterThan(2);
    w.closeAll();
  });

  it('merging a fence with itself gives the same fence, named by the user', () => {
    const w = new World();
    const tl = w.timeline();
    const a = w.fence(tl, 5);
    const m = w.merge(a, a, 'self');
    expect(w.handle(m)).toBe(w.handle(a));
    const { info, leaves } = w.info(m);
    expect(info).toMatchObject({ name: 'self', status: 0, num_fences: 1 });
    expect(leaves[0]?.status).toBe(0);
    w.inc(tl, 5);
    expect(w.query(m).status).toBe(1);
    w.closeAll();
  });

  it('merging two points of one timeline gives the later point itself, in either order', () => {
    const w = new World();
    const tl = w.timeline();
    const p3 = w.fence(tl, 3);
    const p5 = w.fence(tl, 5);
    expect(w.handle(w.merge(p3, p5))).toBe(w.handle(p5));
    expect(w.handle(w.merge(p5, p3))).toBe(w.handle(p5));
    expect(w.query(w.merge(p3, p5)).num_fences).toBe(1);
    w.closeAll();
  });

  it('signalled components are dropped: signalled + pending gives the pending point itself', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const a = w.fence(tA, 1);
    const b = w.fence(tB, 1);
    w.inc(tA, 1);
    const m = w.merge(a, b);
    expect(w.handle(m)).toBe(w.handle(b));
    expect(w.query(m)).toMatchObject({ num_fences: 1, status: 0 });
    w.closeAll();
  });

  it('all components signalled: a private stub (driver/timeline "stub") with the latest timestamp', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const a = w.fence(tA, 1);
    const b = w.fence(tB, 1);
    w.inc(tA, 1);
    w.inc(tB, 1);
    const tsA = w.info(a).leaves[0]?.timestamp_ns ?? 0;
    const tsB = w.info(b).leaves[0]?.timestamp_ns ?? 0;
    expect(tsB).toBeGreaterThanOrEqual(tsA);
    const m = w.merge(a, b, '');
    expect(w.handle(m)).not.toBe(w.handle(a));
    expect(w.handle(m)).not.toBe(w.handle(b));
    const { info, leaves } = w.info(m);
    // No user name: sync_file_get_name formats driver-timeline<context>-<seqno> of the stub (A5).
    expect(info).toMatchObject({ name: 'stub-stub0-0', status: 1, num_fences: 1 });
    expect(leaves).toEqual([{ obj_name: 'stub', driver_name: 'stub', status: 1, flags: 0, timestamp_ns: tsB }]);
    w.closeAll();
  });

  it('a read-only argument is -EFAULT at copy_to_user: no fd installed, the merged fence released', () => {
    const w = new World();
    const a = w.fence(w.timeline(), 1);
    const b = w.fence(w.timeline(), 1);
    const next = w.nextFd();
    const live = w.k.fences.liveCount;
    expect(w.p.ioctl(a, SYNC_IOC_MERGE, Object.freeze(mergeArg(b)))).toBe(-EFAULT);
    expect(w.nextFd()).toBe(next);
    expect(w.p.files.fds()).not.toContain(next);
    expect(w.k.fences.liveCount).toBe(live); // the array made for the merge is gone again
    w.closeAll();
  });

  it('the merged fd is O_CLOEXEC, and both inputs stay valid and independent', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const a = w.fence(tA, 1);
    const b = w.fence(tB, 1);
    const m = w.merge(a, b);
    expect(w.p.readFile(`/proc/self/fdinfo/${m}`)).toContain('flags:\t02000000');
    expect(w.p.close(a)).toBe(0);
    expect(w.p.close(b)).toBe(0);
    expect(w.query(m)).toMatchObject({ num_fences: 2, status: 0 });
    w.inc(tA, 1);
    expect(w.query(m).status).toBe(0);
    w.inc(tB, 1);
    expect(w.query(m).status).toBe(1);
    w.closeAll();
  });
});

// --- SYNC_IOC_FILE_INFO: sync_file_ioctl_fence_info() --------------------------------------------

describe('SYNC_IOC_FILE_INFO (sync_file.c sync_file_ioctl_fence_info)', () => {
  // sync_file.c: copy_from_user → flags||pad → count leaves (dma_fence_unwrap_for_each) → num_fences 0:
  // dma_fence_get_status(top) only; < N: -EINVAL; else sync_fill_fence_info per leaf, status = first ≤ 0,
  // copy_to_user(sync_fence_info) → sync_file_get_name → num_fences = N → copy_to_user(info).
  /** Three pending points on three timelines, merged: N = 3. */
  function three(w: World): { tls: number[]; merged: number } {
    const tls = [w.timeline(), w.timeline(), w.timeline()];
    const [f0, f1, f2] = tls.map((tl) => w.fence(tl, 1));
    return { tls, merged: w.merge(w.merge(f0 ?? -1, f1 ?? -1), f2 ?? -1) };
  }

  it('flags or pad are -EINVAL, with num_fences 0 or N', () => {
    const w = new World();
    const { merged } = three(w);
    for (const n of [0, 3]) {
      expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, { ...newInfo(n), flags: 1 })).toBe(-EINVAL);
      expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, { ...newInfo(n), pad: 1 })).toBe(-EINVAL);
    }
    w.closeAll();
  });

  it('num_fences 0 returns the status and the count and ignores the pointer, even a bad one (A6)', () => {
    const w = new World();
    const { merged } = three(w);
    const live: FenceInfo[] = [];
    const frozen = Object.freeze([]) as readonly FenceInfo[];
    for (const ptr of [live, frozen, null, 0xdead]) {
      const info = newInfo(0, ptr);
      expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, info)).toBe(0);
      expect(info).toMatchObject({ name: 'merged', status: 0, num_fences: 3, flags: 0, pad: 0 });
      expect(info.sync_fence_info).toBe(ptr);
    }
    expect(live).toEqual([]);
    w.closeAll();
  });

  it('num_fences below the leaf count is -EINVAL and writes nothing', () => {
    const w = new World();
    const { merged } = three(w);
    const leaves: FenceInfo[] = [];
    const info = newInfo(2, leaves);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, info)).toBe(-EINVAL);
    expect(leaves).toEqual([]);
    expect(info).toMatchObject({ name: '', num_fences: 2 });
    w.closeAll();
  });

  it('num_fences above the leaf count is accepted and the real count written back (A6)', () => {
    const w = new World();
    const { merged } = three(w);
    const leaves: FenceInfo[] = [];
    const info = newInfo(10, leaves);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, info)).toBe(0);
    expect(info.num_fences).toBe(3);
    expect(leaves).toHaveLength(3);
    expect(info.sync_fence_info).toBe(leaves);
    w.closeAll();
  });

  it('a bad pointer with num_fences ≥ N is -EFAULT (A6)', () => {
    const w = new World();
    const { merged } = three(w);
    for (const ptr of [Object.freeze([]), null, 0xdead]) {
      for (const n of [3, 4]) expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, newInfo(n, ptr))).toBe(-EFAULT);
    }
    w.closeAll();
  });

  it('a NULL argument is -EFAULT; a read-only one is -EFAULT at the copy back (A6)', () => {
    const w = new World();
    const { merged } = three(w);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, null)).toBe(-EFAULT);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO)).toBe(-EFAULT);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, Object.freeze(newInfo()))).toBe(-EFAULT);
    expect(w.p.ioctl(merged, SYNC_IOC_FILE_INFO, Object.freeze(newInfo(3, [])))).toBe(-EFAULT);
    w.closeAll();
  });

  it('per leaf: timeline name, driver "sw_sync", status, flags 0, timestamp 0 while pending (§7.4)', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const m = w.merge(w.fence(tA, 2), w.fence(tB, 1));
    const pending = { obj_name: 'tl', driver_name: 'sw_sync', status: 0, flags: 0, timestamp_ns: 0 };
    expect(w.info(m).leaves).toEqual([pending, pending]);
    const before = w.k.nowNs();
    w.inc(tB, 1);
    const after = w.k.nowNs();
    const { info, leaves } = w.info(m);
    expect(leaves[0]).toEqual(pending);
    expect(leaves[1]).toMatchObject({ obj_name: 'tl', driver_name: 'sw_sync', status: 1, flags: 0 });
    expect(leaves[1]?.timestamp_ns).toBeGreaterThanOrEqual(before);
    expect(leaves[1]?.timestamp_ns).toBeLessThanOrEqual(after);
    expect(info.status).toBe(0);
    w.inc(tA, 2);
    expect(w.info(m).info.status).toBe(1);
    w.closeAll();
  });

  it('C3: info.status is the first leaf ≤ 0 in context order — active older leaf, errored newer leaf → 0', () => {
    const w = new World();
    const tOld = w.timeline();
    const tNew = w.timeline();
    const old = w.fence(tOld, 1);
    const young = w.fence(tNew, 1);
    expect(w.k.fences.contextOf(w.handle(old))).toBeLessThan(w.k.fences.contextOf(w.handle(young)));
    const m = w.merge(young, old); // argument order does not matter: the array is sorted by context
    expect(w.p.close(tNew)).toBe(0); // the newer leaf ends with -ENOENT
    const { info, leaves } = w.info(m);
    expect(leaves.map((l) => l.status)).toEqual([0, -ENOENT]);
    expect(info.status).toBe(0);
    w.closeAll();
  });

  it('C3: the reverse — errored older leaf, active newer leaf → -ENOENT', () => {
    const w = new World();
    const tOld = w.timeline();
    const tNew = w.timeline();
    const m = w.merge(w.fence(tNew, 1), w.fence(tOld, 1));
    expect(w.p.close(tOld)).toBe(0);
    const { info, leaves } = w.info(m);
    expect(leaves.map((l) => l.status)).toEqual([-ENOENT, 0]);
    expect(info.status).toBe(-ENOENT);
    w.closeAll();
  });

  it('A5: a point is named sw_sync-<comm><context>-<seqno>; the comm is cut to 15; names survive the signal', () => {
    const w = new World('tlA5');
    const tl = w.timeline();
    const f = w.fence(tl, 5);
    const ctx = w.k.fences.contextOf(w.handle(f));
    expect(w.query(f).name).toBe(`sw_sync-tlA5${ctx}-5`);
    expect(w.info(f).leaves[0]).toMatchObject({ obj_name: 'tlA5', driver_name: 'sw_sync' });
    w.inc(tl, 5);
    // 6.12 naming (before V5): still sw_sync / <timeline> once signalled.
    expect(w.query(f)).toMatchObject({ name: `sw_sync-tlA5${ctx}-5`, status: 1 });
    expect(w.info(f).leaves[0]).toMatchObject({ obj_name: 'tlA5', driver_name: 'sw_sync', status: 1 });
    const long = w.k.createProcess({ name: 'a-very-long-process-name', uid: 0, gid: 0 });
    const ltl = long.open(SW_SYNC_PATH, O_RDWR);
    const d = { value: 7, name: 'ignored', fence: -1 };
    expect(long.ioctl(ltl, SW_SYNC_IOC_CREATE_FENCE, d)).toBe(0);
    const lh = w.k.runAs(long, () => syncFileGetFence(w.k, d.fence)) as FenceHandle;
    const info = newInfo();
    expect(long.ioctl(d.fence, SYNC_IOC_FILE_INFO, info)).toBe(0);
    expect(info.name).toBe(`sw_sync-a-very-long-pro${w.k.fences.contextOf(lh)}-7`);
    dmaFencePut(w.k.fences, lh);
    long.exit();
    w.closeAll();
  });

  it('C2: an unpolled merged fence whose leaf errored reports top status 1, its leaf entry -ENOENT', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const m = w.merge(w.fence(tA, 1), w.fence(tB, 1));
    expect(w.p.close(tA)).toBe(0); // leaf A: -ENOENT
    w.inc(tB, 1); // leaf B: 1; the array completes without anyone having enabled signalling on it
    expect(w.query(m).status).toBe(1);
    const { info, leaves } = w.info(m);
    expect(leaves.map((l) => l.status)).toEqual([-ENOENT, 1]);
    expect(info.status).toBe(-ENOENT); // the full query follows the first-leaf-≤0 rule
    expect(w.revents(m)).toBe(POLLIN);
    w.closeAll();
  });

  it('C2: after a poll made before the leaf signalled, the array itself carries the error', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const m = w.merge(w.fence(tA, 1), w.fence(tB, 1));
    expect(w.revents(m)).toBe(0); // the first poll enables signalling on the array
    expect(w.p.close(tA)).toBe(0);
    w.inc(tB, 1);
    expect(w.revents(m)).toBe(POLLIN);
    expect(w.query(m).status).toBe(-ENOENT);
    expect(w.info(m).leaves.map((l) => l.status)).toEqual([-ENOENT, 1]);
    w.closeAll();
  });
});

// --- SYNC_IOC_SET_DEADLINE and SW_SYNC_GET_DEADLINE ----------------------------------------------

describe('deadlines (sync_file.c sync_file_ioctl_set_deadline, sw_sync.c sw_sync_ioctl_get_deadline)', () => {
  // sync_file.c: copy_from_user → pad → dma_fence_set_deadline (skipped once signalled). sw_sync.c:
  // copy_from_user → deadline_ns||pad → sync_file_get_fence → dma_fence_to_sync_pt → HAS_DEADLINE bit.
  const getArg = (fd: number) => ({ deadline_ns: 0, pad: 0, fence_fd: fd });

  it('SET_DEADLINE: pad is -EINVAL, a NULL argument -EFAULT, and neither records a deadline', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: 100, pad: 1 })).toBe(-EINVAL);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, null)).toBe(-EFAULT);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, getArg(f))).toBe(-ENOENT);
    w.closeAll();
  });

  it('A8: SET_DEADLINE on a signalled point returns 0 but records nothing (GET_DEADLINE -ENOENT)', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    w.inc(tl, 1);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: 5000, pad: 0 })).toBe(0);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, getArg(f))).toBe(-ENOENT);
    w.closeAll();
  });

  it('GET_DEADLINE: a non-zero deadline_ns or pad on input is -EINVAL', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: 5000, pad: 0 })).toBe(0);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, { ...getArg(f), deadline_ns: 1 })).toBe(-EINVAL);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, { ...getArg(f), pad: 1 })).toBe(-EINVAL);
    w.closeAll();
  });

  it('GET_DEADLINE: a fence_fd that is not a sync_file is -EINVAL (not -ENOENT or -EBADF)', () => {
    const w = new World();
    const tl = w.timeline();
    const devnull = w.p.open('/dev/null', O_RDWR);
    const closed = w.fence(tl, 1);
    expect(w.p.close(closed)).toBe(0);
    for (const fd of [-1, devnull, tl, closed, w.dmabuf()]) {
      expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, getArg(fd))).toBe(-EINVAL);
    }
    w.closeAll();
  });

  it('GET_DEADLINE: a sync_file whose fence is not a sw_sync point (a merged array) is -EINVAL', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const m = w.merge(w.fence(tA, 1), w.fence(tB, 1));
    expect(w.p.ioctl(m, SYNC_IOC_SET_DEADLINE, { deadline_ns: 7000, pad: 0 })).toBe(0);
    expect(w.p.ioctl(tA, SW_SYNC_GET_DEADLINE, getArg(m))).toBe(-EINVAL);
    w.closeAll();
  });

  it('GET_DEADLINE: a point without a deadline is -ENOENT', () => {
    const w = new World();
    const tl = w.timeline();
    const arg = getArg(w.fence(tl, 1));
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, arg)).toBe(-ENOENT);
    expect(arg.deadline_ns).toBe(0);
    w.closeAll();
  });

  it('GET_DEADLINE: the earliest deadline set wins', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    for (const ns of [2_000_000, 1_000_000, 3_000_000]) {
      expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: ns, pad: 0 })).toBe(0);
    }
    const arg = getArg(f);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, arg)).toBe(0);
    expect(arg.deadline_ns).toBe(1_000_000);
    w.closeAll();
  });

  it('A8: GET_DEADLINE is accepted on ANY timeline fd, not only the point’s own', () => {
    const w = new World();
    const own = w.timeline();
    const other = w.timeline();
    const f = w.fence(own, 1);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: 4242, pad: 0 })).toBe(0);
    const arg = getArg(f);
    expect(w.p.ioctl(other, SW_SYNC_GET_DEADLINE, arg)).toBe(0);
    expect(arg.deadline_ns).toBe(4242);
    w.closeAll();
  });

  it('GET_DEADLINE: a NULL argument is -EFAULT; a read-only one -EFAULT at the copy back', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    expect(w.p.ioctl(f, SYNC_IOC_SET_DEADLINE, { deadline_ns: 99, pad: 0 })).toBe(0);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, null)).toBe(-EFAULT);
    expect(w.p.ioctl(tl, SW_SYNC_GET_DEADLINE, Object.freeze(getArg(f)))).toBe(-EFAULT);
    w.closeAll();
  });

  it('SET_DEADLINE on a merged array reaches every pending point (dma_fence_array set_deadline)', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const a = w.fence(tA, 1);
    const b = w.fence(tB, 1);
    const m = w.merge(a, b);
    expect(w.p.ioctl(m, SYNC_IOC_SET_DEADLINE, { deadline_ns: 777, pad: 0 })).toBe(0);
    for (const fd of [a, b]) {
      const arg = getArg(fd);
      expect(w.p.ioctl(tA, SW_SYNC_GET_DEADLINE, arg)).toBe(0);
      expect(arg.deadline_ns).toBe(777);
    }
    w.closeAll();
  });
});

// --- SW_SYNC_IOC_CREATE_FENCE: sw_sync_ioctl_create_fence() / sync_pt_create() ----------------------

describe('SW_SYNC_IOC_CREATE_FENCE (sw_sync.c sw_sync_ioctl_create_fence)', () => {
  // sw_sync.c: get_unused_fd_flags → copy_from_user → sync_pt_create (born signalled if reached, else the
  // rb-tree, reusing a pending pt of the same seqno) → sync_file_create → copy_to_user → fd_install.
  it('opening the timeline needs root (debugfs is 0700): a user gets -EACCES', () => {
    const w = new World();
    const user = w.k.createProcess({ name: 'user' });
    expect(user.open(SW_SYNC_PATH, O_RDWR)).toBe(-EACCES);
    const tl = w.timeline();
    expect(tl).toBeGreaterThan(2);
    w.closeAll();
  });

  it('a value already reached gives a point born signalled, timestamped at creation, never shared', () => {
    const w = new World();
    const tl = w.timeline();
    const zero = w.fence(tl, 0);
    expect(w.revents(zero)).toBe(POLLIN);
    w.inc(tl, 5);
    const before = w.k.nowNs();
    const a = w.fence(tl, 3);
    const b = w.fence(tl, 3);
    const after = w.k.nowNs();
    const { info, leaves } = w.info(a);
    expect(info.status).toBe(1);
    expect(leaves[0]?.timestamp_ns).toBeGreaterThanOrEqual(before);
    expect(leaves[0]?.timestamp_ns).toBeLessThanOrEqual(after);
    expect(w.handle(a)).not.toBe(w.handle(b)); // untracked, so not reused
    w.closeAll();
  });

  it('two creates at the same pending value share one fence', () => {
    const w = new World();
    const tl = w.timeline();
    const a = w.fence(tl, 4);
    const b = w.fence(tl, 4);
    expect(a).not.toBe(b);
    expect(w.handle(a)).toBe(w.handle(b));
    expect(w.handle(w.fence(tl, 5))).not.toBe(w.handle(a));
    w.inc(tl, 4);
    expect([w.query(a).status, w.query(b).status]).toEqual([1, 1]);
    // Once signalled the point is off the timeline's list: a new create at 4 is a fresh (born-signalled) fence.
    expect(w.handle(w.fence(tl, 4))).not.toBe(w.handle(a));
    w.closeAll();
  });

  it('the user name is ignored; the fd is O_CLOEXEC and O_RDONLY (A5)', () => {
    const w = new World();
    const tl = w.timeline();
    const d = { value: 9, name: 'my-name', fence: -1 };
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, d)).toBe(0);
    expect(w.query(d.fence).name).toBe(`sw_sync-tl${w.k.fences.contextOf(w.handle(d.fence))}-9`);
    expect(w.p.readFile(`/proc/self/fdinfo/${d.fence}`)).toContain('flags:\t02000000\n');
    w.closeAll();
  });

  it('a NULL argument is -EFAULT and the reserved fd is given back', () => {
    const w = new World();
    const tl = w.timeline();
    const next = w.nextFd();
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, null)).toBe(-EFAULT);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE)).toBe(-EFAULT);
    expect(w.nextFd()).toBe(next);
    expect(w.k.fences.liveCount).toBe(0);
    w.closeAll();
  });

  it('a read-only argument is -EFAULT at copy_to_user: no fd installed, no point left behind', () => {
    const w = new World();
    const tl = w.timeline();
    const next = w.nextFd();
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, Object.freeze({ value: 3, name: 'ro', fence: -1 }))).toBe(-EFAULT);
    expect(w.nextFd()).toBe(next);
    expect(w.k.fences.liveCount).toBe(0);
    // The point that was made and dropped is not reused by a later create at the same value.
    const f = w.fence(tl, 3);
    expect(w.query(f).status).toBe(0);
    w.closeAll();
  });

  it('a full fd table is -EMFILE, whatever the argument', () => {
    const w = new World();
    const tl = w.timeline();
    const filler = w.fillFdTable();
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, { value: 1, name: 'x', fence: -1 })).toBe(-EMFILE);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, null)).toBe(-EMFILE);
    expect(w.k.fences.liveCount).toBe(0);
    expect(w.p.close(filler.pop() ?? -1)).toBe(0);
    expect(w.fence(tl, 1)).toBeGreaterThan(2);
    w.closeAll();
  });

  it('on fd -1 or a closed timeline fd it is -EBADF; on /dev/null or a sync_file -ENOTTY', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    const devnull = w.p.open('/dev/null', O_RDWR);
    const dead = w.timeline();
    expect(w.p.close(dead)).toBe(0); // the highest fd: nothing reuses it below
    const arg = () => ({ value: 1, name: 'x', fence: -1 });
    expect(w.p.ioctl(-1, SW_SYNC_IOC_CREATE_FENCE, arg())).toBe(-EBADF);
    expect(w.p.ioctl(dead, SW_SYNC_IOC_CREATE_FENCE, arg())).toBe(-EBADF);
    expect(w.p.ioctl(devnull, SW_SYNC_IOC_CREATE_FENCE, arg())).toBe(-ENOTTY);
    expect(w.p.ioctl(f, SW_SYNC_IOC_CREATE_FENCE, arg())).toBe(-ENOTTY);
    w.closeAll();
  });
});

// --- SW_SYNC_IOC_INC: sw_sync_ioctl_inc() / sync_timeline_signal() ---------------------------------

describe('SW_SYNC_IOC_INC (sw_sync.c sw_sync_ioctl_inc, sync_timeline_signal)', () => {
  // sw_sync.c: copy_from_user(u32) → while (value > INT_MAX) signal(INT_MAX) → signal(rest); each signal walks
  // pt_list in seqno order and stops at the first pt timeline_fence_signaled() says is still ahead.
  it('an increment above INT_MAX is split into INT_MAX steps: inc 0xFFFFFFFF reaches a point at 16', () => {
    const w = new World();
    const tl = w.timeline();
    const p16 = w.fence(tl, 16);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_INC, 0xffff_ffff)).toBe(0);
    // Unsplit, value 0xFFFFFFFF would leave 16 "in the future" ((s32)(16 - 0xFFFFFFFF) = 17 > 0).
    expect(w.query(p16).status).toBe(1);
    // The timeline now stands at 0xFFFFFFFF: that point is reached, 0 is one step ahead.
    expect(w.query(w.fence(tl, 0xffff_ffff)).status).toBe(1);
    const p0 = w.fence(tl, 0);
    expect(w.query(p0).status).toBe(0);
    w.inc(tl, 1);
    expect(w.query(p0).status).toBe(1);
    w.closeAll();
  });

  it('an increment of 0 is allowed and changes nothing', () => {
    const w = new World();
    const tl = w.timeline();
    const p1 = w.fence(tl, 1);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_INC, 0)).toBe(0);
    expect(w.query(p1).status).toBe(0);
    expect(w.query(w.fence(tl, 0)).status).toBe(1);
    w.inc(tl, 1);
    expect(w.query(p1).status).toBe(1);
    w.closeAll();
  });

  it('points signal in seqno order, whatever the creation order, and the walk stops at the first pending', () => {
    const w = new World();
    const tl = w.timeline();
    const values = [5, 3, 1, 2, 8];
    const fds = values.map((v) => w.fence(tl, v));
    const order: number[] = [];
    values.forEach((v, i) => {
      const cb: DmaFenceCb = { func: () => order.push(v) };
      expect(dmaFenceAddCallback(w.k.fences, w.handle(fds[i] ?? -1), cb)).toBe(0);
    });
    w.inc(tl, 3);
    expect(order).toEqual([1, 2, 3]);
    expect(fds.map((fd) => w.query(fd).status)).toEqual([0, 1, 1, 1, 0]);
    w.inc(tl, 2);
    expect(order).toEqual([1, 2, 3, 5]);
    w.inc(tl, 3);
    expect(order).toEqual([1, 2, 3, 5, 8]);
    w.closeAll();
  });

  it('A8: the 32-bit wrap compare — at value 0, point 0x80000000 is born signalled, 0x7FFFFFFF pending', () => {
    const w = new World();
    const tl = w.timeline();
    const wrapped = w.fence(tl, 0x8000_0000);
    const ahead = w.fence(tl, 0x7fff_ffff);
    expect(w.query(wrapped).status).toBe(1);
    expect(w.revents(wrapped)).toBe(POLLIN);
    expect(w.query(ahead).status).toBe(0);
    expect(w.revents(ahead)).toBe(0);
    w.inc(tl, INT_MAX);
    expect(w.query(ahead).status).toBe(1);
    w.closeAll();
  });

  it('a NULL (or non-numeric) argument is -EFAULT and the timeline does not move', () => {
    const w = new World();
    const tl = w.timeline();
    const p1 = w.fence(tl, 1);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_INC, null)).toBe(-EFAULT);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_INC)).toBe(-EFAULT);
    expect(w.p.ioctl(tl, SW_SYNC_IOC_INC, { value: 1 })).toBe(-EFAULT);
    expect(w.query(p1).status).toBe(0);
    w.closeAll();
  });

  it('an unknown command is -ENOTTY, on a timeline and on a sync_file (SYNC_IOC 0–2 are burned)', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    expect(w.p.ioctl(tl, _IOWR('W', 3, 16), {})).toBe(-ENOTTY);
    expect(w.p.ioctl(tl, SYNC_IOC_FILE_INFO, newInfo())).toBe(-ENOTTY);
    for (const nr of [0, 1, 2]) expect(w.p.ioctl(f, _IOWR('>', nr, 48), {})).toBe(-ENOTTY);
    expect(w.p.ioctl(f, SW_SYNC_IOC_INC, 1)).toBe(-ENOTTY);
    expect(w.p.ioctl(f, SW_SYNC_GET_DEADLINE, { deadline_ns: 0, pad: 0, fence_fd: f })).toBe(-ENOTTY);
    expect(w.query(f).status).toBe(0);
    w.closeAll();
  });
});

// --- closing the timeline: sw_sync_debugfs_release() ---------------------------------------------

describe('closing the timeline fd (sw_sync.c sw_sync_debugfs_release)', () => {
  // sw_sync.c: every pt still on pt_list gets dma_fence_set_error(-ENOENT) and is signalled; then
  // sync_timeline_put — each pt holds its own timeline reference, released in timeline_fence_release.
  it('pending points signal with -ENOENT (POLLIN, FILE_INFO -ENOENT); signalled ones keep 1', () => {
    const w = new World();
    const tl = w.timeline();
    const done = w.fence(tl, 1);
    const pending = w.fence(tl, 2);
    const far = w.fence(tl, 100);
    w.inc(tl, 1);
    const doneTs = w.info(done).leaves[0]?.timestamp_ns;
    expect(w.revents(pending)).toBe(0);
    const before = w.k.nowNs();
    expect(w.p.close(tl)).toBe(0);
    for (const fd of [pending, far]) {
      expect(w.revents(fd)).toBe(POLLIN);
      expect(w.query(fd).status).toBe(-ENOENT);
      const leaf = w.info(fd).leaves[0];
      expect(leaf?.status).toBe(-ENOENT);
      expect(leaf?.timestamp_ns).toBeGreaterThanOrEqual(before);
    }
    expect(w.query(done).status).toBe(1);
    expect(w.info(done).leaves[0]?.timestamp_ns).toBe(doneTs);
    w.closeAll();
  });

  it('the timeline outlives its fd while points exist: names still resolve, all freed at the end', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 5);
    const ctx = w.k.fences.contextOf(w.handle(f));
    expect(w.p.close(tl)).toBe(0);
    expect(w.p.close(tl)).toBe(-EBADF);
    expect(w.query(f).name).toBe(`sw_sync-tl${ctx}-5`);
    expect(w.info(f).leaves[0]).toMatchObject({ obj_name: 'tl', driver_name: 'sw_sync', status: -ENOENT });
    expect(w.k.fences.liveCount).toBe(1);
    w.closeAll();
  });

  it('a pollAsync waiting on a point wakes when the timeline fd is closed', async () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    const fds: PollFd[] = [{ fd: f, events: POLLIN }];
    let closeRet: number | null = null;
    setImmediate(() => {
      closeRet = w.p.close(tl);
    });
    expect(await w.p.pollAsync(fds, -1)).toBe(1);
    expect(closeRet).toBe(0);
    expect(fds[0]?.revents).toBe(POLLIN);
    expect(w.query(f).status).toBe(-ENOENT);
    w.closeAll();
  });
});

// --- poll: sync_file_poll() ----------------------------------------------------------------------

describe('poll on a sync_file (sync_file.c sync_file_poll)', () => {
  // sync_file.c: the first poll arms one callback (enabling signalling); the mask is EPOLLIN iff
  // dma_fence_is_signaled, else 0. fs/select.c: an fd not open is POLLNVAL, a negative fd is skipped.
  it('0 while pending, POLLIN once signalled, never POLLOUT (even when asked)', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    expect(w.revents(f, POLLIN | POLLOUT)).toBe(0);
    const fds: PollFd[] = [{ fd: f, events: POLLIN | POLLOUT }];
    expect(w.p.poll(fds, 0)).toBe(0);
    w.inc(tl, 1);
    expect(w.p.poll(fds, 0)).toBe(1);
    expect(fds[0]?.revents).toBe(POLLIN);
    expect(w.revents(f, POLLOUT)).toBe(0);
    w.closeAll();
  });

  it('timeout 0 returns at once; a short timeout on a pending fence expires with 0', async () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    const fds: PollFd[] = [{ fd: f, events: POLLIN }];
    expect(w.p.poll(fds, 0)).toBe(0);
    expect(fds[0]?.revents).toBe(0);
    expect(await w.p.pollAsync(fds, 5)).toBe(0);
    expect(fds[0]?.revents).toBe(0);
    w.closeAll();
  });

  it('pollAsync wakes on an INC made later on the same thread', async () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    const fds: PollFd[] = [{ fd: f, events: POLLIN }];
    let resolved = false;
    let pendingAtInc: boolean | null = null;
    setImmediate(() => {
      pendingAtInc = !resolved && w.revents(f) === 0;
      w.inc(tl, 1);
    });
    const n = await w.p.pollAsync(fds, -1).finally(() => {
      resolved = true;
    });
    expect(pendingAtInc).toBe(true);
    expect(n).toBe(1);
    expect(fds[0]?.revents).toBe(POLLIN);
    w.closeAll();
  });

  it('a merged fence polls 0 until its last component signals', () => {
    const w = new World();
    const tA = w.timeline();
    const tB = w.timeline();
    const m = w.merge(w.fence(tA, 2), w.fence(tB, 3));
    w.inc(tA, 2);
    expect(w.revents(m)).toBe(0);
    w.inc(tB, 2);
    expect(w.revents(m)).toBe(0);
    w.inc(tB, 1);
    expect(w.revents(m)).toBe(POLLIN);
    w.closeAll();
  });

  it('an fd that is not open gives POLLNVAL; a negative fd is ignored (revents 0)', () => {
    const w = new World();
    const tl = w.timeline();
    const f = w.fence(tl, 1);
    const closed = w.fence(tl, 2);
    expect(w.p.close(closed)).toBe(0);
    const fds: PollFd[] = [
      { fd: closed, events: POLLIN },
      { fd: -1, events: POLLIN },
      { fd: f, events: POLLIN },
    ];
    expect(w.p.poll(fds, 0)).toBe(1);
    expect(fds.map((x) => x.revents)).toEqual([POLLNVAL, 0, 0]);
    w.inc(tl, 1);
    expect(w.p.poll(fds, 0)).toBe(2);
    expect(fds.map((x) => x.revents)).toEqual([POLLNVAL, 0, POLLIN]);
    w.closeAll();
  });
});
