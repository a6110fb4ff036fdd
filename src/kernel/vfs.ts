/**
 * The slice of the VFS the model needs: a fixed namespace of device nodes and debug files, DAC checks
 * on open, directory listing, and seq-file style read-only files (fs/namei.c, fs/open.c, fs/seq_file.c).
 *
 * Contract: paths are absolute and normalised (no `..`, no trailing `/`); a node is registered once.
 * Directories exist implicitly as prefixes of registered paths.
 */
import { assert } from './assert.js';
import { EACCES, EINVAL, EISDIR, ENOENT, ENOTDIR, type Errno } from './errno.js';
import { File, type FileOperations, FMODE_READ } from './file.js';
import type { Task } from './kernel-core.js';
import { limits } from './limits.js';
import { O_ACCMODE } from './uapi.js';

export interface Inode {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Build the open file. Errors here are the driver's open errors. */
  open(flags: number, task: Task): File | Errno;
}

/** `ACC_MODE`: which permission bits an open mode needs (r=4, w=2). */
function accMode(flags: number): number {
  return [4, 2, 6, 6][flags & O_ACCMODE] ?? 6;
}

/** `generic_permission` for owner/group/other bits; root bypasses (CAP_DAC_OVERRIDE). */
export function mayOpen(inode: Inode, flags: number, task: Task): boolean {
  if (task.uid === 0) return true;
  const want = accMode(flags);
  let bits: number;
  if (task.uid === inode.uid) bits = (inode.mode >> 6) & 7;
  else if (task.gid === inode.gid) bits = (inode.mode >> 3) & 7;
  else bits = inode.mode & 7;
  return (bits & want) === want;
}

export interface DirMode {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** Search (x) permission on a directory, root bypassing it as CAP_DAC_READ_SEARCH does. */
function maySearch(dir: DirMode, task: Task): boolean {
  if (task.uid === 0) return true;
  let bits: number;
  if (task.uid === dir.uid) bits = (dir.mode >> 6) & 7;
  else if (task.gid === dir.gid) bits = (dir.mode >> 3) & 7;
  else bits = dir.mode & 7;
  return (bits & 1) === 1;
}

export class Vfs {
  private readonly nodes = new Map<string, Inode>();
  /** Directories with explicit permissions; others are implicit and 0755 root. */
  private readonly dirs = new Map<string, DirMode>();

  registerDir(path: string, mode: DirMode): void {
    assert(path.startsWith('/') && !path.endsWith('/'), `bad path ${path}`);
    this.dirs.set(path, mode);
  }

  /** Path walk permission: every explicit ancestor directory must be searchable (-EACCES otherwise). */
  private walkAllowed(path: string, task: Task): boolean {
    for (const [dir, mode] of this.dirs) {
      if ((path === dir || path.startsWith(`${dir}/`)) && path !== dir && !maySearch(mode, task)) return false;
    }
    return true;
  }

  /** readdir needs read and search permission on the directory itself. */
  private mayList(path: string, task: Task): boolean {
    const mode = this.dirs.get(path);
    if (mode === undefined || task.uid === 0) return true;
    return maySearch(mode, task) && mayOpen({ ...mode, open: () => -ENOENT }, 0, task);
  }
  private readonly dynamic: { prefix: string; resolve: (rest: string, task: Task) => Inode | undefined }[] = [];

  register(path: string, inode: Inode): void {
    assert(path.startsWith('/') && !path.endsWith('/'), `bad path ${path}`);
    assert(!this.nodes.has(path), `${path} registered twice`);
    this.nodes.set(path, inode);
  }

  /** Paths resolved at lookup time, like /proc/self/fdinfo/<fd>. */
  registerDynamic(prefix: string, resolve: (rest: string, task: Task) => Inode | undefined): void {
    this.dynamic.push({ prefix, resolve });
  }

  lookup(path: string, task: Task): Inode | 'dir' | undefined {
    const node = this.nodes.get(path);
    if (node !== undefined) return node;
    for (const d of this.dynamic) {
      if (path.startsWith(d.prefix)) {
        const n = d.resolve(path.slice(d.prefix.length), task);
        if (n !== undefined) return n;
      }
    }
    const dirPrefix = path === '/' ? '/' : `${path}/`;
    for (const p of this.nodes.keys()) if (p.startsWith(dirPrefix)) return 'dir';
    return undefined;
  }

  /** `open(2)` path resolution and permission check. */
  open(path: string, flags: number, task: Task): File | Errno {
    if (typeof path !== 'string' || !path.startsWith('/')) return -ENOENT;
    if (!this.walkAllowed(path, task)) return -EACCES;
    const node = this.lookup(path, task);
    if (node === undefined) return -ENOENT;
    // Opening a directory for I/O is -EISDIR; directories are only listed here (readdir).
    if (node === 'dir') return -EISDIR;
    if (!mayOpen(node, flags, task)) return -EACCES;
    return node.open(flags, task);
  }

  /** Directory entries, with `.` and `..` first as readdir(3) returns them. */
  readdir(path: string, task: Task): string[] | Errno {
    if (typeof path !== 'string' || !path.startsWith('/')) return -ENOENT;
    if (!this.walkAllowed(path, task) || !this.mayList(path, task)) return -EACCES;
    const node = this.lookup(path, task);
    if (node === undefined) return -ENOENT;
    if (node !== 'dir') return -ENOTDIR;
    const prefix = path === '/' ? '/' : `${path}/`;
    const names = new Set<string>();
    for (const p of this.nodes.keys()) {
      if (!p.startsWith(prefix)) continue;
      const name = p.slice(prefix.length).split('/')[0];
      if (name) names.add(name);
    }
    return ['.', '..', ...[...names].sort()];
  }
}

/** A read-only file whose text is produced at open, read with a position (seq_file-like). */
export function seqFileInode(mode: number, show: (task: Task) => string | Errno): Inode {
  return {
    mode,
    uid: 0,
    gid: 0,
    open(flags: number, task: Task): File | Errno {
      if (flags & O_ACCMODE) return -EACCES;
      const text = show(task);
      if (typeof text === 'number') return text;
      return new File(seqFops, flags, new TextEncoder().encode(text));
    },
  };
}

const seqFops: FileOperations = Object.freeze({
  name: 'seq_file',
  read(file: File, count: number): Uint8Array | Errno {
    if (!(file.fMode & FMODE_READ)) return -EINVAL;
    const data = file.privateData as Uint8Array;
    const n = Math.max(0, Math.min(count, limits.debugfsReadBytesMax, data.length - file.pos));
    const out = data.slice(file.pos, file.pos + n);
    file.pos += n;
    return out;
  },
  llseek(file: File, offset: number, whence: number): number {
    if (whence !== 0 || offset < 0) return -EINVAL;
    file.pos = offset;
    return offset;
  },
});

/** `/dev/null`: reads are EOF, writes vanish, no ioctl (-ENOTTY), no mmap (-ENODEV). */
export const devNullInode: Inode = {
  mode: 0o666,
  uid: 0,
  gid: 0,
  open: (flags: number) => new File(nullFops, flags, null),
};
const nullFops: FileOperations = Object.freeze({
  name: 'null',
  read: () => new Uint8Array(0),
  llseek: () => 0,
});
