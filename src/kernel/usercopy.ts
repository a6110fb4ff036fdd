/**
 * `copy_from_user` / `copy_to_user` for the JS facade.
 *
 * A syscall argument is a plain object with the C struct's field names. We lay it out in bytes by the
 * struct's layout, copy exactly `in_size` bytes the way the kernel would, and on the way back overlay
 * `out_size` kernel bytes onto the user's bytes and decode every field they touch. That makes the
 * size-versioning in ioctl numbers behave as in C: a field past `in_size` reads as zero, a field past
 * the kernel's struct is left untouched.
 *
 * Faults: `null`/`undefined`/non-object user memory faults on any non-empty copy (-EFAULT); a frozen
 * object models read-only memory, so `copy_to_user` into it faults.
 */
import { EFAULT, EINVAL } from './errno.js';
import type { Field, StructLayout } from './uapi.js';

function encodeField(view: DataView, f: Field, value: unknown): void {
  if (value === undefined || value === null) return;
  switch (f.type) {
    case 'u32':
    case 's32': {
      const n = typeof value === 'bigint' ? Number(BigInt.asUintN(32, value)) : Number(value);
      if (!Number.isFinite(n)) throw new TypeError(`field ${f.name}: not a number: ${String(value)}`);
      view.setUint32(f.offset, Math.trunc(n) >>> 0, true);
      return;
    }
    case 'u64': {
      let b: bigint;
      if (typeof value === 'bigint') b = value;
      else if (typeof value === 'object') {
        // A user pointer given as a JS object (an array the kernel fills): opaque and non-NULL here; the
        // ioctl that owns the field reads and writes the object itself.
        b = 1n;
      } else {
        const n = Number(value);
        if (!Number.isFinite(n)) throw new TypeError(`field ${f.name}: not a number: ${String(value)}`);
        b = BigInt(Math.trunc(n));
      }
      view.setBigUint64(f.offset, BigInt.asUintN(64, b), true);
      return;
    }
    case 'str': {
      const bytes = new TextEncoder().encode(String(value));
      for (let i = 0; i < Math.min(bytes.length, f.sizeBytes); i++) view.setUint8(f.offset + i, bytes[i] ?? 0);
      return;
    }
  }
}

function decodeField(view: DataView, f: Field): unknown {
  switch (f.type) {
    case 'u32':
      return view.getUint32(f.offset, true);
    case 's32':
      return view.getInt32(f.offset, true);
    case 'u64': {
      const b = view.getBigUint64(f.offset, true);
      return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
    case 'str': {
      const raw = new Uint8Array(view.buffer, view.byteOffset + f.offset, f.sizeBytes);
      const end = raw.indexOf(0);
      return new TextDecoder().decode(raw.subarray(0, end < 0 ? raw.length : end));
    }
  }
}

function isUserMemory(arg: unknown): arg is Record<string, unknown> {
  return typeof arg === 'object' && arg !== null;
}

/** The user's struct as bytes (`sizeBytes` long, zero past the fields the layout knows). */
function userBytes(arg: Record<string, unknown>, layout: StructLayout, sizeBytes: number): DataView {
  const view = new DataView(new ArrayBuffer(Math.max(sizeBytes, layout.sizeBytes)));
  for (const f of layout.fields) encodeField(view, f, arg[f.name]);
  return view;
}

/**
 * `copy_from_user(kbuf, arg, inSize)` into a zeroed kernel buffer of `kSize` bytes.
 * Returns the kernel buffer or -EFAULT.
 */
export function copyFromUser(arg: unknown, layout: StructLayout, inSize: number, kSize: number): DataView | number {
  const kbuf = new DataView(new ArrayBuffer(Math.max(kSize, layout.sizeBytes)));
  if (inSize === 0) return kbuf;
  if (!isUserMemory(arg)) return -EFAULT;
  const u = userBytes(arg, layout, inSize);
  new Uint8Array(kbuf.buffer).set(new Uint8Array(u.buffer, 0, Math.min(inSize, kbuf.byteLength)));
  return kbuf;
}

/** `copy_to_user(arg, kbuf, outSize)`: 0 or -EFAULT. */
export function copyToUser(arg: unknown, layout: StructLayout, kbuf: DataView, outSize: number): number {
  if (outSize === 0) return 0;
  if (!isUserMemory(arg) || Object.isFrozen(arg)) return -EFAULT;
  const u = userBytes(arg, layout, Math.max(outSize, layout.sizeBytes));
  const n = Math.min(outSize, kbuf.byteLength, u.byteLength);
  new Uint8Array(u.buffer).set(new Uint8Array(kbuf.buffer, kbuf.byteOffset, n));
  for (const f of layout.fields) {
    if (f.offset < outSize) arg[f.name] = decodeField(u, f);
  }
  return 0;
}

/** Read a field of a kernel buffer. */
export function kget(kbuf: DataView, layout: StructLayout, name: string): number | bigint | string {
  const f = layout.fields.find((x) => x.name === name);
  if (f === undefined) throw new TypeError(`${layout.name} has no field ${name}`);
  return decodeField(kbuf, f) as number | bigint | string;
}

/** Write a field of a kernel buffer. */
export function kset(kbuf: DataView, layout: StructLayout, name: string, value: number | bigint | string): void {
  const f = layout.fields.find((x) => x.name === name);
  if (f === undefined) throw new TypeError(`${layout.name} has no field ${name}`);
  encodeField(kbuf, f, value);
}

/** `strndup_user(arg, n)`: a user string of at most n-1 chars; -EFAULT or -EINVAL as the kernel. */
export function strndupUser(arg: unknown, n: number): string | number {
  if (typeof arg !== 'string') return -EFAULT;
  const bytes = new TextEncoder().encode(arg);
  const nul = bytes.indexOf(0);
  const len = nul < 0 ? bytes.length : nul;
  // strnlen_user counts the NUL; a string that does not fit with its NUL in n bytes is -EINVAL.
  if (len + 1 > n) return -EINVAL;
  return new TextDecoder().decode(bytes.subarray(0, len));
}
