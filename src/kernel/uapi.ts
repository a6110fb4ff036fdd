/**
 * The user-visible ABI: ioctl numbers, open/mmap flags and the structs userspace passes, under their
 * kernel names. Values are the Linux ones (include/uapi/asm-generic/ioctl.h, linux/dma-heap.h,
 * linux/dma-buf.h, linux/sync_file.h, drm/drm.h, drm/vgem_drm.h, asm-generic/fcntl.h, mman-common.h).
 *
 * A struct is described by its layout (field offsets and types). The facade marshals the caller's
 * argument object through the layout with the byte sizes encoded in the request number, so a smaller
 * or larger struct behaves exactly as `copy_from_user(in_size)` / `copy_to_user(out_size)` would.
 */

// --- ioctl encoding: _IOC(dir,type,nr,size) = dir<<30 | size<<16 | type<<8 | nr ---
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;
/** Userspace writes the argument (kernel copies in). */
export const IOC_IN = _IOC_WRITE << 30;
/** Userspace reads the argument back (kernel copies out). */
export const IOC_OUT = _IOC_READ << 30;

export function _IOC(dir: number, type: string | number, nr: number, size: number): number {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  return ((dir << 30) | (size << 16) | (t << 8) | nr) >>> 0;
}
export const _IO = (type: string, nr: number): number => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: string, nr: number, size: number): number => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: string, nr: number, size: number): number => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: string, nr: number, size: number): number => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
export const _IOC_NR = (cmd: number): number => cmd & 0xff;
export const _IOC_TYPE = (cmd: number): number => (cmd >>> 8) & 0xff;
export const _IOC_SIZE = (cmd: number): number => (cmd >>> 16) & 0x3fff;
export const _IOC_DIR = (cmd: number): number => (cmd >>> 30) & 0x3;

// --- open(2) ---
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CREAT = 0o100;
export const O_NONBLOCK = 0x800;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0x80000;

// --- lseek(2) ---
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

// --- mmap(2) ---
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
/** Flags MAP_SHARED_VALIDATE knows; anything else with it is -EOPNOTSUPP (mm/mmap.c LEGACY_MAP_MASK). */
export const LEGACY_MAP_MASK = 0x01 | 0x02 | 0x10 | 0x20 | 0x0100 | 0x0800 | 0x1000 | 0x2000 | 0x4000;

// --- page geometry ---
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

// --- linux/dma-heap.h ---
export const DMA_HEAP_IOC_MAGIC = 'H';
/** `struct dma_heap_allocation_data { __u64 len; __u32 fd; __u32 fd_flags; __u64 heap_flags; }` */
export const DMA_HEAP_ALLOCATION_DATA_SIZE = 24;
export const DMA_HEAP_IOCTL_ALLOC = _IOWR('H', 0, DMA_HEAP_ALLOCATION_DATA_SIZE); // 0xC0184800
export const DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE;
export const DMA_HEAP_VALID_HEAP_FLAGS = 0;

// --- linux/dma-buf.h ---
export const DMA_BUF_BASE = 'b';
export const DMA_BUF_SYNC_READ = 1 << 0;
export const DMA_BUF_SYNC_WRITE = 2 << 0;
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
export const DMA_BUF_SYNC_START = 0 << 2;
export const DMA_BUF_SYNC_END = 1 << 2;
export const DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;
export const DMA_BUF_NAME_LEN = 32;
export const DMA_BUF_IOCTL_SYNC = _IOW('b', 0, 8); // 0x40086200
export const DMA_BUF_SET_NAME_A = _IOW('b', 1, 4); // 0x40046201
export const DMA_BUF_SET_NAME_B = _IOW('b', 1, 8); // 0x40086201
/** On 64-bit userspace `DMA_BUF_SET_NAME` is `_IOW('b', 1, const char *)`, i.e. the `_B` form. */
export const DMA_BUF_SET_NAME = DMA_BUF_SET_NAME_B;
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = _IOWR('b', 2, 8); // 0xC0086202
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = _IOW('b', 3, 8); // 0x40086203

// --- linux/sync_file.h (implemented by the fences issue; numbers fixed here, in one place) ---
export const SYNC_IOC_MAGIC = '>';
export const SYNC_IOC_MERGE = _IOWR('>', 3, 48); // 0xC0303E03
export const SYNC_IOC_FILE_INFO = _IOWR('>', 4, 56); // 0xC0383E04
export const SYNC_IOC_SET_DEADLINE = _IOW('>', 5, 16); // 0x40103E05
export const SW_SYNC_IOC_CREATE_FENCE = _IOWR('W', 0, 40); // 0xC0285700
export const SW_SYNC_IOC_INC = _IOW('W', 1, 4); // 0x40045701
export const SW_SYNC_GET_DEADLINE = _IOWR('W', 2, 16); // 0xC0105702

// --- drm/drm.h and drm/vgem_drm.h (the vgem importer) ---
export const DRM_IOCTL_BASE = 'd';
export const DRM_COMMAND_BASE = 0x40;
/** `struct drm_version` is 64 bytes on 64-bit (3 ints + pad, then 3 × {size_t len; char *ptr}). */
export const DRM_IOCTL_VERSION = _IOWR('d', 0x00, 64); // 0xC0406400
export const DRM_IOCTL_GEM_CLOSE = _IOW('d', 0x09, 8); // 0x40086409
export const DRM_IOCTL_PRIME_HANDLE_TO_FD = _IOWR('d', 0x2d, 12); // 0xC00C642D
export const DRM_IOCTL_PRIME_FD_TO_HANDLE = _IOWR('d', 0x2e, 12); // 0xC00C642E
export const DRM_IOCTL_VGEM_FENCE_ATTACH = _IOWR('d', DRM_COMMAND_BASE + 0x01, 16); // 0xC0106441
export const DRM_IOCTL_VGEM_FENCE_SIGNAL = _IOW('d', DRM_COMMAND_BASE + 0x02, 8); // 0x40086442
export const DRM_CLOEXEC = O_CLOEXEC;
export const DRM_RDWR = O_RDWR;

// --- struct layouts -------------------------------------------------------------------------
export type FieldType = 'u32' | 's32' | 'u64' | 'str';
export interface Field {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
  /** Bytes the field occupies; `str` fields are fixed-size char arrays. */
  readonly sizeBytes: number;
}
export interface StructLayout {
  readonly name: string;
  readonly sizeBytes: number;
  readonly fields: readonly Field[];
}

function layout(name: string, sizeBytes: number, spec: [string, FieldType, number?][]): StructLayout {
  const fields: Field[] = [];
  let offset = 0;
  for (const [fname, type, strBytes] of spec) {
    const sizeB = type === 'u64' ? 8 : type === 'str' ? (strBytes ?? 0) : 4;
    if (type === 'u64') offset = (offset + 7) & ~7;
    fields.push({ name: fname, offset, type, sizeBytes: sizeB });
    offset += sizeB;
  }
  if (((offset + 7) & ~7) !== sizeBytes && offset !== sizeBytes) {
    throw new Error(`layout ${name}: fields end at ${offset}, declared ${sizeBytes}`);
  }
  return Object.freeze({ name, sizeBytes, fields: Object.freeze(fields) });
}

export const dma_heap_allocation_data = layout('dma_heap_allocation_data', 24, [
  ['len', 'u64'],
  ['fd', 'u32'],
  ['fd_flags', 'u32'],
  ['heap_flags', 'u64'],
]);
export const dma_buf_sync = layout('dma_buf_sync', 8, [['flags', 'u64']]);
export const dma_buf_export_sync_file = layout('dma_buf_export_sync_file', 8, [
  ['flags', 'u32'],
  ['fd', 's32'],
]);
export const dma_buf_import_sync_file = dma_buf_export_sync_file;
export const drm_prime_handle = layout('drm_prime_handle', 12, [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['fd', 's32'],
]);
/** `struct drm_vgem_fence_attach { __u32 handle; __u32 flags; __u32 out_fence; __u32 pad; }` */
export const drm_vgem_fence_attach = layout('drm_vgem_fence_attach', 16, [
  ['handle', 'u32'],
  ['flags', 'u32'],
  ['out_fence', 'u32'],
  ['pad', 'u32'],
]);
/** `struct drm_vgem_fence_signal { __u32 fence; __u32 flags; }` */
export const drm_vgem_fence_signal = layout('drm_vgem_fence_signal', 8, [
  ['fence', 'u32'],
  ['flags', 'u32'],
]);
export const VGEM_FENCE_WRITE = 0x1;
export const drm_gem_close = layout('drm_gem_close', 8, [
  ['handle', 'u32'],
  ['pad', 'u32'],
]);

/** `struct sync_merge_data { char name[32]; __s32 fd2; __s32 fence; __u32 flags; __u32 pad; }` */
export const sync_merge_data = layout('sync_merge_data', 48, [
  ['name', 'str', 32],
  ['fd2', 's32'],
  ['fence', 's32'],
  ['flags', 'u32'],
  ['pad', 'u32'],
]);
/**
 * `struct sync_file_info { char name[32]; __s32 status; __u32 flags; __u32 num_fences; __u32 pad;
 * __u64 sync_fence_info; }`. In JS the `sync_fence_info` pointer is an array the kernel fills with
 * `{ obj_name, driver_name, status, flags, timestamp_ns }` objects; a frozen or non-array value faults.
 */
export const sync_file_info = layout('sync_file_info', 56, [
  ['name', 'str', 32],
  ['status', 's32'],
  ['flags', 'u32'],
  ['num_fences', 'u32'],
  ['pad', 'u32'],
  ['sync_fence_info', 'u64'],
]);
/** `struct sync_set_deadline { __u64 deadline_ns; __u64 pad; }` */
export const sync_set_deadline = layout('sync_set_deadline', 16, [
  ['deadline_ns', 'u64'],
  ['pad', 'u64'],
]);
/** `struct sw_sync_create_fence_data { __u32 value; char name[32]; __s32 fence; }` */
export const sw_sync_create_fence_data = layout('sw_sync_create_fence_data', 40, [
  ['value', 'u32'],
  ['name', 'str', 32],
  ['fence', 's32'],
]);
/** `struct sw_sync_get_deadline { __u64 deadline_ns; __u32 pad; __s32 fence_fd; }` */
export const sw_sync_get_deadline = layout('sw_sync_get_deadline', 16, [
  ['deadline_ns', 'u64'],
  ['pad', 'u32'],
  ['fence_fd', 's32'],
]);

// --- poll(2) ---
export const POLLIN = 0x1;
export const POLLPRI = 0x2;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
export const POLLRDNORM = 0x40;
export const POLLWRNORM = 0x100;
/** What a file without a poll op reports (include/linux/poll.h DEFAULT_POLLMASK). */
export const DEFAULT_POLLMASK = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
/** One `struct pollfd`; `revents` is written back. */
export interface PollFd {
  fd: number;
  events: number;
  revents?: number;
}

/** Userspace's view of a u64 field: a JS number when it is safe, otherwise a bigint. */
export type U64 = number | bigint;
/** An ioctl argument: the struct's fields by their kernel names. Frozen objects model unwritable memory. */
export type IoctlArg = Record<string, unknown>;
