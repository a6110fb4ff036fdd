/**
 * Named event channels. Kernel objects publish facts ("a buffer was attached", "a misuse was seen") and
 * never format them; metrics, detectors, the trace writer and tests subscribe. A channel with no
 * subscriber costs one boolean test, so publishing is always on.
 *
 * Channels are per kernel instance (not node:diagnostics_channel, which is process-global), so several
 * kernels in one test file never hear each other.
 */

export interface HeapAllocEvent {
  heap: string;
  ino: number;
  sizeBytes: number;
  pid: number;
}
export interface HeapAllocFailEvent {
  heap: string;
  sizeBytes: number;
  pid: number;
  errno: number;
}
export interface BufEvent {
  ino: number;
  expName: string;
  sizeBytes: number;
}
export interface AttachEvent {
  ino: number;
  device: string;
  dynamic: boolean;
}
export interface MapEvent {
  ino: number;
  device: string;
  dir: number;
  dmaAddresses: number[];
}
export interface CpuAccessEvent {
  ino: number;
  pid: number;
  flags: number;
  result: number;
}
export interface MoveNotifyEvent {
  ino: number;
  importers: string[];
}
export interface SignalEvent {
  pid: number;
  signal: 'SIGSEGV' | 'SIGBUS';
  address: number;
  reason: string;
}
/** One side of a two-sided report (a race's current and previous access, say). */
export interface WarningSide {
  device: string;
  /** The operation: 'read', 'write', 'fill', 'checksum', 'cpu-write', ... */
  op: string;
  /** The device's job (the seqno of its latest fence then), or -1. */
  job: number;
  buffer: number;
  /** Byte range [lo, hi) of the buffer. */
  range: [number, number];
  timeNs: number;
  /** The fences this side had waited on last, as 'timeline#seqno'. */
  waited: string[];
}

/** What a detector knows beyond the one-line message. */
export interface WarningDetail {
  /** Where it happened, stable across seeds and schedules (the dedupe key, with rule and device). */
  site?: string;
  sides?: WarningSide[];
  /** The missing happens-before edge, in words. */
  missingEdge?: string;
  /** How to fix it. */
  hint?: string;
}

/** A misuse the kernel survives (a WARN, a lockdep splat): data, not a crash. */
export interface Warning {
  /** Stable rule id, e.g. `lockdep-assert-held`, `dmabuf-release-with-attachments`. */
  rule: string;
  message: string;
  timeNs: number;
  pid: number;
  /** Objects involved, by kind: `{ ino: 3, device: 'vgem' }`. */
  objects: Record<string, string | number>;
  detail?: WarningDetail;
}

export interface KernelChannels {
  'kernel:heap:alloc': HeapAllocEvent;
  'kernel:heap:alloc-fail': HeapAllocFailEvent;
  'kernel:heap:free': HeapAllocEvent;
  'kernel:dmabuf:export': BufEvent;
  'kernel:dmabuf:release': BufEvent;
  'kernel:dmabuf:attach': AttachEvent;
  'kernel:dmabuf:detach': AttachEvent;
  'kernel:dmabuf:map': MapEvent;
  'kernel:dmabuf:unmap': MapEvent;
  'kernel:dmabuf:move-notify': MoveNotifyEvent;
  'kernel:dmabuf:cpu-access': CpuAccessEvent;
  'kernel:signal': SignalEvent;
  'kernel:warn': Warning;
}
export type ChannelName = keyof KernelChannels;
type Listener<T> = (message: T, timeNs: number) => void;

export class Channel<T> {
  readonly name: string;
  private listeners: Listener<T>[] = [];
  constructor(name: string) {
    this.name = name;
  }
  get hasSubscribers(): boolean {
    return this.listeners.length > 0;
  }
  subscribe(fn: Listener<T>): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
  publish(message: T, timeNs: number): void {
    for (const l of this.listeners) l(message, timeNs);
  }
}

export class Channels {
  private readonly byName = new Map<string, Channel<unknown>>();
  private readonly nowNs: () => number;
  constructor(nowNs: () => number) {
    this.nowNs = nowNs;
  }
  channel<K extends ChannelName>(name: K): Channel<KernelChannels[K]> {
    let c = this.byName.get(name);
    if (c === undefined) {
      c = new Channel<unknown>(name);
      this.byName.set(name, c);
    }
    return c as Channel<KernelChannels[K]>;
  }
  publish<K extends ChannelName>(name: K, message: KernelChannels[K]): void {
    const c = this.byName.get(name);
    if (c?.hasSubscribers) c.publish(message, this.nowNs());
  }
  subscribe<K extends ChannelName>(name: K, fn: Listener<KernelChannels[K]>): () => void {
    return this.channel(name).subscribe(fn);
  }
}
