/**
 * `struct file`, its operations table and the per-process fd table (fs/file_table.c, fs/file.c).
 *
 * Contract:
 * - A File is refcounted: one reference per installed fd, per mmap of it, per `fget`/`dma_buf_get`.
 *   `fops.release` runs exactly once, when the last reference is put; a put below zero is our bug.
 * - fds are allocated lowest-first in two steps like the kernel (`get_unused_fd_flags` reserves, then
 *   `fd_install` publishes), so an error between the two leaves no fd behind. The table holds at most
 *   `limits.fdCountMax` fds; past that `get_unused_fd_flags` returns -EMFILE.
 */
import { assert } from './assert.js';
import { EBADF, EMFILE, type Errno, ESPIPE } from './errno.js';
import { limits } from './limits.js';
import type { Vma } from './mm.js';
import { O_ACCMODE, O_CLOEXEC, O_NONBLOCK } from './uapi.js';

export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;
export const FMODE_LSEEK = 0x4;

/** `OPEN_FMODE(flags)`: O_RDONLY→READ, O_WRONLY→WRITE, O_RDWR→both, 3→neither (ioctl-only). */
export function openFmode(flags: number): number {
  return ((flags + 1) & O_ACCMODE) as number;
}

export interface FileOperations {
  /** For debugging and `/proc/<pid>/fd` links. */
  readonly name: string;
  llseek?(file: File, offset: number, whence: number): number;
  read?(file: File, count: number): Uint8Array | Errno;
  unlockedIoctl?(file: File, cmd: number, arg: unknown): number;
  mmap?(file: File, vma: Vma): number;
  release?(file: File): void;
  showFdinfo?(file: File): string;
  /**
   * `poll`: the events ready now, and the fences whose signal could change that (what the kernel's
   * wait-queue registration would be woken by), each with a reference the caller puts after waiting.
   * No poll op means DEFAULT_POLLMASK.
   */
  poll?(file: File): { mask: number; fences: readonly number[] };
  /**
   * Await, without blocking the event loop, what `unlockedIoctl(cmd, arg)` would sleep on, so that
   * `ioctlAsync` then runs it without sleeping. Files whose ioctls never sleep leave it out.
   */
  ioctlWaitAsync?(file: File, cmd: number, arg: unknown): Promise<void>;
  /** The `/proc/<pid>/fd/N` link target. */
  dname?(file: File): string;
}

let nextFileId = 1;

export class File {
  readonly id = nextFileId++;
  /** Inode number shown by fdinfo; pseudo files (dma-bufs) set their own, others use the file id. */
  ino = this.id;
  readonly fops: FileOperations;
  fFlags: number;
  readonly fMode: number;
  /** Position for read(); seq files restart at 0. */
  pos = 0;
  privateData: unknown;
  private refs = 1;
  private released = false;

  constructor(fops: FileOperations, flags: number, privateData: unknown, fmodeExtra = 0) {
    this.fops = fops;
    this.fFlags = flags & (O_ACCMODE | O_NONBLOCK);
    this.fMode = openFmode(flags) | fmodeExtra;
    this.privateData = privateData;
  }

  get refCount(): number {
    return this.refs;
  }
  get isReleased(): boolean {
    return this.released;
  }

  /** `get_file`. */
  get(): this {
    assert(!this.released && this.refs > 0, `get of released file ${this.id}`);
    this.refs++;
    return this;
  }

  /** `fput`. */
  put(): void {
    assert(!this.released && this.refs > 0, `put of released file ${this.id} (${this.fops.name})`);
    this.refs--;
    if (this.refs === 0) {
      this.released = true;
      this.fops.release?.(this);
    }
  }
}

/** `no_llseek` / `nonseekable_open`. */
export function noLlseek(): number {
  return -ESPIPE;
}

const RESERVED = Symbol('reserved-fd');

export class FdTable {
  private readonly slots: (File | typeof RESERVED | undefined)[] = [];
  private readonly closeOnExec = new Set<number>();

  /** `get_unused_fd_flags`: lowest free fd, reserved but not yet visible. */
  getUnusedFdFlags(flags: number): number {
    let fd = 0;
    while (fd < this.slots.length && this.slots[fd] !== undefined) fd++;
    if (fd >= limits.fdCountMax) return -EMFILE;
    this.slots[fd] = RESERVED;
    if (flags & O_CLOEXEC) this.closeOnExec.add(fd);
    else this.closeOnExec.delete(fd);
    return fd;
  }

  /** `put_unused_fd`: give back a reservation that was never installed. */
  putUnusedFd(fd: number): void {
    assert(this.slots[fd] === RESERVED, `put_unused_fd(${fd}) of a slot that is not reserved`);
    this.slots[fd] = undefined;
    this.closeOnExec.delete(fd);
  }

  /** `fd_install`: publishes `file` at a reserved fd; the table takes over the caller's reference. */
  fdInstall(fd: number, file: File): void {
    assert(this.slots[fd] === RESERVED, `fd_install(${fd}) into a slot that is not reserved`);
    this.slots[fd] = file;
  }

  /** Reserve and install in one step; returns the fd or -EMFILE (the caller keeps its reference then). */
  install(file: File, flags: number): number {
    const fd = this.getUnusedFdFlags(flags);
    if (fd < 0) return fd;
    this.fdInstall(fd, file);
    return fd;
  }

  /** Borrow the file behind `fd` (no reference taken), or undefined. */
  lookup(fd: number): File | undefined {
    if (!Number.isInteger(fd) || fd < 0) return undefined;
    const f = this.slots[fd];
    return f instanceof File ? f : undefined;
  }

  isCloexec(fd: number): boolean {
    return this.closeOnExec.has(fd);
  }

  /** `close_fd`: -EBADF if nothing is installed there. The table's reference is put. */
  close(fd: number): number {
    const file = this.lookup(fd);
    if (file === undefined) return -EBADF;
    this.slots[fd] = undefined;
    this.closeOnExec.delete(fd);
    file.put();
    return 0;
  }

  /** Installed fds, ascending. */
  fds(): number[] {
    const out: number[] = [];
    this.slots.forEach((f, fd) => {
      if (f instanceof File) out.push(fd);
    });
    return out;
  }
}
