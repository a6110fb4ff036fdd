/**
 * A user process and its system calls: the facade users drive the kernel model through.
 *
 * Contract:
 * - Every call returns what the syscall returns: a non-negative result, or a negative errno. Nothing a
 *   caller passes can make the kernel throw; a throw is a dmafarm bug (KernelBug).
 * - A call runs with `kernel.current` set to this process, so fds land in its table, locks and accounting
 *   name it.
 * - `readMem`/`writeMem` are the process's CPU executing loads and stores at a virtual address (what C
 *   code does through an mmap'd pointer), not syscalls: a bad access is a SIGSEGV/SIGBUS, reported on
 *   `kernel:signal`, and returns -EFAULT.
 * - `exit()` closes every fd and unmaps everything, as do_exit does; the process is then unusable.
 */

import { dmaFenceIsSignaled, dmaFencePut } from './dma-fence.js';
import { EACCES, EBADF, EINVAL, ENODEV, ENOMEM, ENOTTY, EOPNOTSUPP, EOVERFLOW, type Errno, ESPIPE } from './errno.js';
import { FdTable, type File, FMODE_READ, FMODE_WRITE } from './file.js';
import type { Kernel } from './kernel.js';
import type { Task } from './kernel-core.js';
import { MmStruct } from './mm.js';
import {
  DEFAULT_POLLMASK,
  LEGACY_MAP_MASK,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  O_CLOEXEC,
  O_RDWR,
  PAGE_SIZE,
  POLLERR,
  POLLHUP,
  POLLNVAL,
  type PollFd,
  PROT_WRITE,
} from './uapi.js';

export interface ProcessOptions {
  name: string;
  uid?: number;
  gid?: number;
  /** Open /dev/null on fds 0, 1 and 2, as a daemon would have (default true). */
  stdio?: boolean;
}

export class Process implements Task {
  readonly pid: number;
  readonly comm: string;
  readonly uid: number;
  readonly gid: number;
  readonly files = new FdTable();
  readonly mm: MmStruct;
  private readonly kernel: Kernel;
  private alive = true;

  constructor(kernel: Kernel, pid: number, opts: ProcessOptions) {
    this.kernel = kernel;
    this.pid = pid;
    this.comm = opts.name.slice(0, 15); // TASK_COMM_LEN - 1
    this.uid = opts.uid ?? 1000;
    this.gid = opts.gid ?? 1000;
    this.mm = new MmStruct(pid, kernel);
  }

  get isAlive(): boolean {
    return this.alive;
  }

  private sys<T>(fn: () => T): T {
    if (!this.alive) throw new Error(`process ${this.pid} (${this.comm}) has exited; its syscalls are gone`);
    return this.kernel.runAs(this, fn);
  }

  open(path: string, flags: number = O_RDWR): number {
    return this.sys(() => {
      const file = this.kernel.vfs.open(path, flags, this);
      if (typeof file === 'number') return file;
      const fd = this.files.install(file, flags & O_CLOEXEC);
      if (fd < 0) file.put();
      return fd;
    });
  }

  close(fd: number): number {
    return this.sys(() => this.files.close(fd));
  }

  /** dup(2): the new fd shares the file and does not inherit close-on-exec. */
  dup(fd: number): number {
    return this.sys(() => {
      const file = this.files.lookup(fd);
      if (file === undefined) return -EBADF;
      file.get();
      const nfd = this.files.install(file, 0);
      if (nfd < 0) file.put();
      return nfd;
    });
  }

  ioctl(fd: number, request: number, arg?: unknown): number {
    return this.sys(() => {
      const file = this.files.lookup(fd);
      if (file === undefined) return -EBADF;
      if (!file.fops.unlockedIoctl) return -ENOTTY;
      return file.fops.unlockedIoctl(file, request >>> 0, arg);
    });
  }

  /**
   * The kernel thread's twin of `ioctl`: first awaits (Atomics.waitAsync) whatever the ioctl would sleep
   * on — the fences a SYNC START waits for — then runs it. Use it when this same thread will signal them.
   */
  async ioctlAsync(fd: number, request: number, arg?: unknown): Promise<number> {
    const file = this.sys(() => this.files.lookup(fd));
    if (file?.fops.ioctlWaitAsync) {
      file.get();
      try {
        await file.fops.ioctlWaitAsync(file, request >>> 0, arg);
      } finally {
        this.sys(() => file.put());
      }
    }
    return this.ioctl(fd, request, arg);
  }

  lseek(fd: number, offset: number, whence: number): number {
    return this.sys(() => {
      const file = this.files.lookup(fd);
      if (file === undefined) return -EBADF;
      return file.fops.llseek ? file.fops.llseek(file, offset, whence) : -ESPIPE;
    });
  }

  read(fd: number, count: number): Uint8Array | Errno {
    return this.sys(() => {
      const file = this.files.lookup(fd);
      if (file === undefined || !(file.fMode & FMODE_READ)) return -EBADF;
      if (!file.fops.read) return -EINVAL;
      return file.fops.read(file, count);
    });
  }

  /** Read a whole file (open + read loop + close), for debugfs and /proc text. */
  readFile(path: string): string | Errno {
    const fd = this.open(path, 0);
    if (fd < 0) return fd;
    const parts: Uint8Array[] = [];
    for (;;) {
      const chunk = this.read(fd, 1 << 16);
      if (typeof chunk === 'number') {
        this.close(fd);
        return chunk;
      }
      if (chunk.length === 0) break;
      parts.push(chunk);
    }
    this.close(fd);
    return Buffer.concat(parts).toString('utf8');
  }

  readdir(path: string): string[] | Errno {
    return this.sys(() => this.kernel.vfs.readdir(path, this));
  }

  /** `readlink("/proc/self/fd/N")`. */
  fdLink(fd: number): string | Errno {
    return this.sys(() => {
      const file = this.files.lookup(fd);
      if (file === undefined) return -EBADF;
      return file.fops.dname ? file.fops.dname(file) : `/${file.fops.name}`;
    });
  }

  /**
   * poll(2): fills each entry's `revents` and returns how many are non-zero; 0 on timeout. `timeoutMs` < 0
   * waits forever. It blocks the calling thread (Atomics.wait) while waiting — use `pollAsync` on the
   * kernel thread, whose event loop must keep running.
   */
  poll(fds: PollFd[], timeoutMs: number): number {
    return this.sys(() => {
      const t = this.kernel.fences;
      const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
      // do_poll: scan, sleep until something that could matter signals, scan again, until an event or
      // the deadline. One wake is not enough: the fence that signalled may not be the one that decides.
      for (;;) {
        const scan = this.pollScan(fds);
        try {
          const left = deadline - performance.now();
          if (scan.ready > 0 || left <= 0 || timeoutMs === 0) return scan.ready;
          if (!this.pollCanWait(scan.fences, timeoutMs)) return 0;
          t.sleepUntilAny(scan.fences, left, (f) => dmaFenceIsSignaled(t, f));
        } finally {
          for (const f of scan.fences) dmaFencePut(t, f);
        }
      }
    });
  }

  /** The event-loop-friendly twin of `poll`. */
  async pollAsync(fds: PollFd[], timeoutMs: number): Promise<number> {
    const t = this.kernel.fences;
    const deadline = timeoutMs < 0 ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
    for (;;) {
      const scan = this.sys(() => this.pollScan(fds));
      try {
        const left = deadline - performance.now();
        if (scan.ready > 0 || left <= 0 || timeoutMs === 0) return scan.ready;
        if (!this.pollCanWait(scan.fences, timeoutMs)) return 0;
        await t.sleepUntilAnyAsync(scan.fences, left, (f) => dmaFenceIsSignaled(t, f));
      } finally {
        this.sys(() => {
          for (const f of scan.fences) dmaFencePut(t, f);
        });
      }
    }
  }

  /** One pass of do_poll: every entry's revents, and what could wake us. */
  private pollScan(fds: PollFd[]): { ready: number; fences: number[] } {
    let ready = 0;
    const fences: number[] = [];
    for (const p of fds) {
      let revents = 0;
      if (p.fd >= 0) {
        const file = this.files.lookup(p.fd);
        if (file === undefined) revents = POLLNVAL;
        else {
          const r = file.fops.poll ? file.fops.poll(file) : { mask: DEFAULT_POLLMASK, fences: [] };
          revents = r.mask & ((p.events | POLLERR | POLLHUP) >>> 0);
          fences.push(...r.fences);
        }
      }
      p.revents = revents;
      if (revents) ready++;
    }
    return { ready, fences };
  }

  /** A poll with nothing that could ever wake it and no timeout would sleep forever: report, don't hang. */
  private pollCanWait(fences: number[], timeoutMs: number): boolean {
    if (fences.length > 0 || timeoutMs >= 0) return true;
    this.kernel.warn('poll-sleeps-forever', 'poll with no timeout on files that can never become ready', {
      pid: this.pid,
    });
    return false;
  }

  /** mmap(2) of a file; returns the mapping's address. Order of checks as arch mmap + do_mmap. */
  mmap(fd: number, length: number, prot: number, flags: number, offset = 0): number {
    return this.sys(() => {
      if (!Number.isInteger(offset) || offset < 0 || offset % PAGE_SIZE !== 0) return -EINVAL;
      // Anonymous memory is not modelled: buffers are what we map.
      if (flags & MAP_ANONYMOUS) return -EINVAL;
      const file = this.files.lookup(fd);
      if (file === undefined) return -EBADF;
      if (!Number.isInteger(length) || length <= 0) return -EINVAL;
      const len = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
      if (len > Number.MAX_SAFE_INTEGER / 2) return -ENOMEM;
      const pgoff = offset / PAGE_SIZE;
      if (pgoff + len / PAGE_SIZE > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
      const err = checkMapType(file, prot, flags);
      if (err) return err;
      const vma = this.mm.newVma(file, len, prot, flags, pgoff);
      if (typeof vma === 'number') return vma;
      const ret = file.fops.mmap?.(file, vma) ?? -ENODEV;
      if (ret) return ret;
      file.get();
      this.mm.insert(vma);
      return vma.start;
    });
  }

  munmap(addr: number, length: number): number {
    return this.sys(() => this.mm.munmap(addr, length));
  }

  /** The CPU loads `length` bytes at `addr` of this process. */
  readMem(addr: number, length: number): Uint8Array | Errno {
    return this.sys(() => this.mm.read(addr, length));
  }

  /** The CPU stores `data` at `addr` of this process. */
  writeMem(addr: number, data: Uint8Array): number {
    return this.sys(() => this.mm.write(addr, data));
  }

  /** do_exit: unmap everything, close every fd. */
  exit(): void {
    if (!this.alive) return;
    this.kernel.runAs(this, () => {
      this.mm.exitMmap();
      for (const fd of this.files.fds()) this.files.close(fd);
    });
    this.alive = false;
    this.kernel.reap(this);
  }
}

/** do_mmap's MAP_TYPE switch: which file modes each mapping type needs. */
function checkMapType(file: File, prot: number, flags: number): number {
  switch (flags & MAP_TYPE) {
    case MAP_SHARED_VALIDATE:
      if (flags & ~LEGACY_MAP_MASK) return -EOPNOTSUPP;
    // falls through
    case MAP_SHARED:
      if (prot & PROT_WRITE && !(file.fMode & FMODE_WRITE)) return -EACCES;
    // falls through
    case MAP_PRIVATE:
      if (!(file.fMode & FMODE_READ)) return -EACCES;
      if (!file.fops.mmap) return -ENODEV;
      return 0;
    default:
      return -EINVAL;
  }
}
