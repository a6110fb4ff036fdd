/**
 * The kernel: owns physical memory, the CPU cache, the DMA mapping layer, the heap registry, every
 * dma-buf, the VFS namespace and the processes. It runs on one thread (the "kernel thread"); devices in
 * other threads reach buffer bytes through the arenas and the kernel through messages.
 *
 * Contract:
 * - `current` is the task a call runs for; `runAs` sets it for the call's duration and restores it, so
 *   nested calls (a syscall inside a test helper) compose.
 * - Misuse is data: `warn` publishes a Warning on `kernel:warn` and keeps up to `limits.warningsKeptMax`
 *   of them; past that they are counted. A dmafarm bug throws KernelBug and is never swallowed here.
 * - Boot registers the default heaps in a fixed order (system, system-uncached, CMA, carveout, then vram
 *   when `memory.vramBytes` is set, then the protected heaps asked for, in use-case order), so heap minors
 *   and `readdir` are the same on every run.
 */
import { assert } from './assert.js';
import { BitmapArea } from './bitmap-area.js';
import { CpuCache } from './cpu-cache.js';
import { DmaBufList, dmaBufDebugShow } from './dma-buf.js';
import { dmaFenceContextAlloc, FenceTable } from './dma-fence.js';
import { dmaFenceArrayCreate } from './dma-fence-array.js';
import { isContainerFence } from './dma-fence-unwrap.js';
import { type AllocFdPublish, type DmaHeap, DmaHeapRegistry } from './dma-heap.js';
import { DmaMapping } from './dma-mapping.js';
import { ResvTable } from './dma-resv.js';
import { type Errno, isErr } from './errno.js';
import type { FdTable } from './file.js';
import { CARVEOUT_HEAP_NAME, carveoutHeapOps, carveoutHeapProperties } from './heaps/carveout-heap.js';
import { CMA_HEAP_NAME, CMA_LEGACY_HEAP_NAME, cmaHeapOps, cmaHeapProperties } from './heaps/cma-heap.js';
import { type SystemHeapPriv, systemHeapOps, systemHeapProperties } from './heaps/system-heap.js';
import {
  DEFAULT_FIREWALL,
  PROTECTED_USE_CASES,
  type ProtectedUseCase,
  protectedHeapName,
  teeHeapOps,
  teeHeapProperties,
} from './heaps/tee-heap.js';
import { VRAM_HEAP_NAME, vramHeapOps, vramHeapPriv, vramHeapProperties } from './heaps/vram-heap.js';
import type { KernelCore, Task } from './kernel-core.js';
import { defaultMemory, limits } from './limits.js';
import { type Arena, PhysicalMemory } from './memory.js';
import { BuddyAllocator } from './page-alloc.js';
import { Process, type ProcessOptions } from './process.js';
import { SW_SYNC_PATH, swSyncOpen } from './sw-sync.js';
import { Channels, type Warning, type WarningDetail } from './trace.js';
import { O_CLOEXEC, PAGE_SIZE } from './uapi.js';
import { devNullInode, type Inode, seqFileInode, Vfs } from './vfs.js';
import { VGEM_DEVICE_PATH, Vgem } from './vgem.js';

export interface KernelOptions {
  memory?: Partial<{
    systemBytes: number;
    cmaBytes: number;
    carveoutBytes: number;
    cpuCacheBytes: number;
    cpuCacheWays: number;
    /** Device-local memory (a GPU's VRAM) behind the 'vram' heap; 0, the default, registers no such heap. */
    vramBytes: number;
  }>;
  heaps?: Partial<{
    /** Android's `system-uncached` (default on). */
    systemUncached: boolean;
    /** `default_cma_region` (default on). */
    cma: boolean;
    /** Also register the CMA area under its legacy name `linux,cma` (CONFIG_DMABUF_HEAPS_CMA_LEGACY). */
    cmaLegacyAlias: boolean;
    /** A carveout heap over a reserved region (default on). */
    carveout: boolean;
  }>;
  /**
   * TEE protected heaps (tee-heap.ts), one per use case given: its pool's size and the DMA masters its
   * firewall admits (default DEFAULT_FIREWALL). None by default, as on a system without a TEE.
   */
  protectedHeaps?: Partial<Record<ProtectedUseCase, { bytes: number; firewall?: readonly string[] }>>;
  compat?: Partial<{
    /** Where ALLOC publishes its fd: 'new' (stable fix, 6.12.117) or 'legacy' (kernel-semantics §11 C1). */
    allocFdPublish: AllocFdPublish;
  }>;
  /** Register vgem at /dev/dri/card0 (default on). */
  vgem?: boolean;
  /** Sizes of the shared tables (each at most its limit in limits.ts): their size is the kernel's boot cost. */
  tables?: { fences?: number; resvs?: number };
  /** Drop unused resv reservations at every unlock (CONFIG_DEBUG_MUTEXES; default on). */
  debugResvSlots?: boolean;
  /** How long a synchronous syscall may block the kernel thread on fences (default limits.kernelThreadWaitMsMax). */
  hungTaskTimeoutMs?: number;
  /** CLOCK_MONOTONIC in ns; the deterministic host injects its own. */
  clockNs?: () => number;
}

const kernelTask: Task = Object.freeze({ pid: 0, comm: 'swapper', uid: 0, gid: 0 });

/** Pages held in each arena's allocator, for leak checks. */
export interface ArenaUsage {
  arena: string;
  totalPages: number;
  freePages: number;
}

export class Kernel implements KernelCore {
  readonly mem = new PhysicalMemory();
  readonly cache: CpuCache;
  readonly dma: DmaMapping;
  readonly channels: Channels;
  readonly dmaBufList = new DmaBufList();
  readonly heaps: DmaHeapRegistry;
  readonly vfs = new Vfs();
  readonly vgem: Vgem;
  /** The shared fence table every thread maps. */
  readonly fences: FenceTable;
  /** The shared reservation objects (one per dma-buf). */
  readonly resvs: ResvTable;
  readonly blockingWaitNsMax: number;
  readonly warnings: Warning[] = [];
  warningCount = 0;

  private readonly clockNs: () => number;
  private readonly processes = new Map<number, Process>();
  private nextPid = 1;
  private currentTask: Task = kernelTask;
  private readonly arenaUsage: (() => ArenaUsage)[] = [];

  constructor(options: KernelOptions = {}) {
    const memOpts = { ...defaultMemory, vramBytes: 0, ...options.memory };
    this.clockNs = options.clockNs ?? (() => Number(process.hrtime.bigint()));
    this.channels = new Channels(() => this.clockNs());
    this.fences = FenceTable.create(Math.min(options.tables?.fences ?? limits.fenceCountMax, limits.fenceCountMax), {
      nowNs: () => this.clockNs(),
      onMisuse: (m) => this.warn(m.rule, m.message, { fence: m.fence }),
    });
    this.blockingWaitNsMax = (options.hungTaskTimeoutMs ?? limits.kernelThreadWaitMsMax) * 1e6;
    const t = this.fences;
    this.resvs = ResvTable.create(
      Math.min(options.tables?.resvs ?? limits.resvCountMax, limits.resvCountMax),
      {
        fences: t,
        current: () => this.currentTask,
        threadId: 0,
        warn: (rule, message, objects) => this.warn(rule, message, objects),
        isContainer: (f) => isContainerFence(t, f),
        makeArray: (fs) => dmaFenceArrayCreate(t, fs, dmaFenceContextAlloc(t, 1), 1, false),
      },
      { debugSlots: options.debugResvSlots ?? true },
    );
    this.cache = CpuCache.create(this.mem, memOpts.cpuCacheBytes, memOpts.cpuCacheWays);
    this.dma = new DmaMapping(this.mem, this.cache);
    this.heaps = new DmaHeapRegistry(this, this.dmaBufList, options.compat?.allocFdPublish ?? 'new');
    this.vgem = new Vgem(this);
    this.boot(memOpts, options);
  }

  private boot(memOpts: Required<NonNullable<KernelOptions['memory']>>, options: KernelOptions): void {
    const heapOpts = { systemUncached: true, cma: true, cmaLegacyAlias: false, carveout: true, ...options.heaps };
    const system = this.mem.addArena('system', memOpts.systemBytes);
    const buddy = new BuddyAllocator(system);
    this.trackArena(system, () => buddy.freePageCount);
    this.addHeapOrBug({
      name: 'system',
      ops: systemHeapOps(this, this.dmaBufList),
      priv: { buddy, cached: true } satisfies SystemHeapPriv,
      properties: systemHeapProperties(buddy, true),
    });
    if (heapOpts.systemUncached) {
      this.addHeapOrBug({
        name: 'system-uncached',
        ops: systemHeapOps(this, this.dmaBufList),
        priv: { buddy, cached: false } satisfies SystemHeapPriv,
        properties: systemHeapProperties(buddy, false),
      });
    }
    if (heapOpts.cma && memOpts.cmaBytes > 0) {
      const arena = this.mem.addArena('cma', memOpts.cmaBytes);
      const area = new BitmapArea(arena);
      this.trackArena(arena, () => area.totalPages - area.usedPages);
      const names = heapOpts.cmaLegacyAlias ? [CMA_HEAP_NAME, CMA_LEGACY_HEAP_NAME] : [CMA_HEAP_NAME];
      for (const name of names) {
        this.addHeapOrBug({
          name,
          ops: cmaHeapOps(this, this.dmaBufList, area),
          priv: area,
          properties: cmaHeapProperties(
            area,
            names.filter((n) => n !== name),
          ),
        });
      }
    }
    if (heapOpts.carveout && memOpts.carveoutBytes > 0) {
      const arena = this.mem.addArena('carveout', memOpts.carveoutBytes);
      const pool = new BitmapArea(arena);
      this.trackArena(arena, () => pool.totalPages - pool.usedPages);
      this.addHeapOrBug({
        name: CARVEOUT_HEAP_NAME,
        ops: carveoutHeapOps(this, this.dmaBufList, pool),
        priv: pool,
        properties: carveoutHeapProperties(pool),
      });
    }
    if (memOpts.vramBytes > 0) {
      const arena = this.mem.addArena('vram', memOpts.vramBytes);
      const area = new BitmapArea(arena);
      this.trackArena(arena, () => area.totalPages - area.usedPages);
      this.addHeapOrBug({
        name: VRAM_HEAP_NAME,
        ops: vramHeapOps(this, this.dmaBufList),
        priv: vramHeapPriv(area, buddy),
        properties: vramHeapProperties(area),
      });
    }
    for (const useCase of PROTECTED_USE_CASES) {
      const spec = options.protectedHeaps?.[useCase];
      if (spec === undefined || spec.bytes === 0) continue;
      const arena = this.mem.addArena(`protected-${useCase}`, spec.bytes);
      const pool = new BitmapArea(arena);
      this.trackArena(arena, () => pool.totalPages - pool.usedPages);
      this.addHeapOrBug({
        name: protectedHeapName(useCase),
        ops: teeHeapOps(this, this.dmaBufList, pool),
        priv: pool,
        properties: teeHeapProperties(pool, useCase, spec.firewall ?? DEFAULT_FIREWALL[useCase]),
      });
    }
    this.vfs.register('/dev/null', devNullInode);
    if (options.vgem ?? true) this.vfs.register(VGEM_DEVICE_PATH, this.vgem.inode);
    // debugfs is mounted 0700 root (fs/debugfs/inode.c): only root may look inside.
    this.vfs.registerDir('/sys/kernel/debug', { mode: 0o700, uid: 0, gid: 0 });
    this.vfs.register(
      '/sys/kernel/debug/dma_buf/bufinfo',
      seqFileInode(0o444, () => dmaBufDebugShow(this.dmaBufList)),
    );
    this.vfs.register(SW_SYNC_PATH, {
      mode: 0o600,
      uid: 0,
      gid: 0,
      open: (flags, task) => swSyncOpen(this, flags, task),
    });
    this.vfs.registerDynamic('/proc/self/fdinfo/', (rest, task) => this.fdinfoInode(rest, task));
  }

  private addHeapOrBug(info: Parameters<DmaHeapRegistry['add']>[0]): DmaHeap {
    const heap = this.addHeap(info);
    assert(!isErr(heap), `boot heap ${info.name} refused: ${String(heap)}`);
    return heap;
  }

  /** `dma_heap_add` plus its device node `/dev/dma_heap/<name>`. */
  addHeap(info: Parameters<DmaHeapRegistry['add']>[0]): DmaHeap | Errno {
    const heap = this.heaps.add(info);
    if (isErr(heap)) return heap;
    const inode: Inode = {
      mode: heap.mode,
      uid: heap.uid,
      gid: heap.gid,
      open: (flags: number) => this.heaps.open(heap.minor, flags),
    };
    this.vfs.register(`/dev/dma_heap/${heap.name}`, inode);
    return heap;
  }

  private trackArena(arena: Arena, freePages: () => number): void {
    this.arenaUsage.push(() => ({ arena: arena.name, totalPages: arena.pageCount, freePages: freePages() }));
  }

  private fdinfoInode(rest: string, task: Task): Inode | undefined {
    const fd = Number(rest);
    const proc = this.processes.get(task.pid);
    const file = proc?.files.lookup(fd);
    if (!/^\d+$/.test(rest) || proc === undefined || file === undefined) return undefined;
    return seqFileInode(0o444, () => {
      // fs/proc/fd.c seq_show: "flags:\t0%o" with O_CLOEXEC folded in from the fd table.
      const flags = (file.fFlags | (proc.files.isCloexec(fd) ? O_CLOEXEC : 0)).toString(8);
      return `pos:\t${file.pos}\nflags:\t0${flags}\nmnt_id:\t0\nino:\t${file.ino}\n${file.fops.showFdinfo?.(file) ?? ''}`;
    });
  }

  // --- KernelCore ---
  get current(): Task {
    return this.currentTask;
  }
  nowNs(): number {
    return this.clockNs();
  }
  currentFiles(): FdTable {
    const proc = this.processes.get(this.currentTask.pid);
    assert(proc !== undefined, `task ${this.currentTask.comm} has no fd table`);
    return proc.files;
  }
  warn(rule: string, message: string, objects: Record<string, string | number>, detail?: WarningDetail): true {
    this.warningCount++;
    const w: Warning = { rule, message, timeNs: this.clockNs(), pid: this.currentTask.pid, objects };
    if (detail !== undefined) w.detail = detail;
    if (this.warnings.length < limits.warningsKeptMax) this.warnings.push(w);
    this.channels.publish('kernel:warn', w);
    return true;
  }

  /**
   * The kernel's life is over and nothing will touch its memory or cache again (the sim host, after a
   * run's report is built): hand both to the next kernel booted on this thread (see memory.ts).
   */
  recycle(): void {
    this.mem.recycle();
    this.cache.recycle();
  }

  /** Run `fn` as `task` (a syscall entry). */
  runAs<T>(task: Task, fn: () => T): T {
    const saved = this.currentTask;
    this.currentTask = task;
    try {
      return fn();
    } finally {
      this.currentTask = saved;
    }
  }

  createProcess(opts: ProcessOptions): Process {
    if (typeof opts?.name !== 'string' || opts.name.length === 0) {
      throw new TypeError('createProcess: options.name must be a non-empty string');
    }
    for (const id of ['uid', 'gid'] as const) {
      const v = opts[id];
      if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
        throw new TypeError(`createProcess: options.${id} must be a non-negative integer`);
      }
    }
    if (this.processes.size >= limits.processCountMax) {
      throw new RangeError(`createProcess: processCountMax (${limits.processCountMax}) reached`);
    }
    const proc = new Process(this, this.nextPid++, opts);
    this.processes.set(proc.pid, proc);
    if (opts.stdio ?? true) for (let i = 0; i < 3; i++) proc.open('/dev/null', 2);
    return proc;
  }

  /**
   * A kernel task without a process around it: a device driver's context (its pid owns resv locks and
   * is charged for its allocations). It has no fd table.
   */
  createTask(name: string): Task {
    if (typeof name !== 'string' || name.length === 0)
      throw new TypeError('createTask: name must be a non-empty string');
    return Object.freeze({ pid: this.nextPid++, comm: name.slice(0, 15), uid: 0, gid: 0 });
  }

  /** @internal Process.exit removes itself. */
  reap(proc: Process): void {
    this.processes.delete(proc.pid);
  }

  processList(): readonly Process[] {
    return [...this.processes.values()];
  }

  /** Free and total pages of every arena: after all processes exit, free must equal total. */
  memoryUsage(): ArenaUsage[] {
    return this.arenaUsage.map((f) => f());
  }

  /** The `/sys/kernel/debug/dma_buf/bufinfo` text. */
  bufinfo(): string {
    return dmaBufDebugShow(this.dmaBufList);
  }

  get pageSize(): number {
    return PAGE_SIZE;
  }
}
