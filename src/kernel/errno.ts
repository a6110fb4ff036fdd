/**
 * Linux errno values (generic / x86-64 / arm64). The kernel model returns them negated, exactly as a
 * syscall's raw return value would be: a non-negative result, or `-Exxx`. They are values, never thrown.
 * Source: include/uapi/asm-generic/errno-base.h, errno.h.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOTTY = 25;
export const ESPIPE = 29;
export const EDEADLK = 35;
export const ENODATA = 61;
export const ETIME = 62;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const ETIMEDOUT = 110;
export const EALREADY = 114;
export const ECANCELED = 125;
/** Kernel-internal; userspace sees the syscall restarted or EINTR. */
export const ERESTARTSYS = 512;
export const MAX_ERRNO = 4095;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EISDIR]: 'EISDIR',
  [EINVAL]: 'EINVAL',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [ESPIPE]: 'ESPIPE',
  [EDEADLK]: 'EDEADLK',
  [ENODATA]: 'ENODATA',
  [ETIME]: 'ETIME',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [ETIMEDOUT]: 'ETIMEDOUT',
  [EALREADY]: 'EALREADY',
  [ECANCELED]: 'ECANCELED',
  [ERESTARTSYS]: 'ERESTARTSYS',
};

/** A negative errno, as returned in place of a pointer (`ERR_PTR`) or a result. */
export type Errno = number;

/** `IS_ERR` for our union returns: a number in [-MAX_ERRNO, -1] is an error. */
export function isErr(x: unknown): x is Errno {
  return typeof x === 'number' && x < 0 && x >= -MAX_ERRNO;
}

/** `-22` → `"-EINVAL"`, `0` → `"0"`; for messages and test failures. */
export function errnoName(ret: number): string {
  if (ret >= 0) return String(ret);
  const name = NAMES[-ret];
  return name === undefined ? String(ret) : `-${name}`;
}
