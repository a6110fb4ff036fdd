/**
 * The wire protocol between the kernel thread and device workers, in one place.
 *
 * - `DeviceWorkerInit` is the worker's workerData: every SharedArrayBuffer it needs (arenas, fence table,
 *   resv table, mapping table, link rings, its heartbeat word) plus which model to run with which knobs.
 *   SharedArrayBuffers travel as values and are shared, never copied; no buffer byte ever crosses a
 *   message.
 * - `KernelRpc` is the control plane the kernel thread serves to each worker over comlink (its own
 *   MessageChannel per device). Named by its implementer. Errors come back as negative errnos, never as
 *   thrown exceptions.
 * - `ToWorker` / `ToKernel` are the plain messages outside comlink: move_notify to a device, the
 *   device's forwarded log lines and its final result or crash to the kernel. A log line is one-way: a
 *   comlink call costs a request, a reply and an id per line, and a display logs every scan-out.
 */

import type { MessagePort } from 'node:worker_threads';
import type { AttachmentRef, BufferRef, DeviceResult } from '../devices/device.js';
import type { WasmMemory } from '../kernel/memory.js';
import type { WarningDetail } from '../kernel/trace.js';
import type { MappingInfo } from './device-service.js';

export interface ArenaInit {
  name: string;
  basePfn: number;
  pageCount: number;
  sab: SharedArrayBuffer;
  /** The wasm memory `sab` belongs to (memory.ts), so this thread's wasm code can run on the arena. */
  memory?: WasmMemory;
}

export interface DeviceWorkerInit {
  /** Absolute module path of the worker entry to import (TypeScript runs go through tsx). */
  module?: string;
  name: string;
  model: string;
  /** For a user's own model: the module exporting it (default export or `model`). */
  modelModule?: string;
  knobs: unknown;
  index: number;
  seed: number;
  pid: number;
  deviceNames: string[];
  fenceContext: number;
  arenas: ArenaInit[];
  fencesSab: SharedArrayBuffer;
  /** The CPU cache (one CPU): device CPU access goes through it, as the kernel's does. */
  cacheSab: SharedArrayBuffer;
  resvsSab: SharedArrayBuffer;
  mappingSab: SharedArrayBuffer;
  ports: Record<string, SharedArrayBuffer>;
  /** Int32 words: [heartbeat, current op code]; the watchdog reads them. */
  heartbeat: SharedArrayBuffer;
  /** The device's FenceLedger: the host drops its references if the worker dies. */
  ledgerSab: SharedArrayBuffer;
  /** The happens-before detector's shared state (HbShared), or null when detection is off. */
  hbSab: SharedArrayBuffer | null;
  /** What every device is blocked on (WaitForShared). */
  waitForSab: SharedArrayBuffer;
  rpcPort: MessagePort;
  /** Real seconds per simulated second of `busy` (0: run flat out, for throughput). */
  timeScale: number;
  /** The worker logs through its own synchronous destination at this level. */
  logLevel: string;
  prettyLog: boolean;
  /** Also forward each line to the kernel thread (RunOptions.log was given). */
  forwardLogs: boolean;
}

/** Operations a device can be in, by code, for the heartbeat word and hang reports. */
export const OPS = Object.freeze([
  'start',
  'busy',
  'allocate',
  'release',
  'attach',
  'detach',
  'map',
  'unmap',
  'move_notify',
  'write',
  'fill',
  'read',
  'checksum',
  'fence',
  'signal',
  'wait',
  'waited',
  'resv-add',
  'resv-wait',
  'send',
  'recv',
  'close',
  'evict',
  'cpu-map',
  'cpu-write',
  'cpu-read',
  'cpu-sync',
  'copy',
  'lock',
  'unlock',
  'signalling',
  'send-dropped',
  'callback',
] as const);
export type Op = (typeof OPS)[number];
export function opCode(op: string): number {
  const i = OPS.indexOf(op as (typeof OPS)[number]);
  return Math.max(i, 0);
}

/** Served by the kernel thread (comlink), one instance per device. */
export interface KernelRpc {
  allocate(heap: string, sizeBytes: number): BufferRef | number;
  release(id: number): number;
  attach(id: number, dynamic: boolean): AttachmentRef | number;
  detach(attId: number): number;
  map(attId: number, dir: number): MappingInfo | number;
  unmap(mapId: number): number;
  evict(id: number): number;
  cpuPages(id: number): { runs: { pfn: number; pageCount: number }[]; cached: boolean } | number;
  cpuAccess(id: number, begin: boolean, dir: number): number;
  bufferRef(id: number): BufferRef | number;
  resvIndexOf(id: number): number;
  misuse(rule: string, message: string, objects?: Record<string, string | number>, detail?: WarningDetail): void;
  /** A lockdep edge (src/detect/lockdep.ts), sent once per distinct edge by each device. */
  lockdep(from: string, to: string, op: string): void;
}

export type ToWorker = { kind: 'move-notify'; att: AttachmentRef };

export type ToKernel =
  /** Only when the caller of runScenario asked for device logs (`RunOptions.log`). */
  | { kind: 'log'; message: string; fields?: Record<string, unknown> }
  | {
      kind: 'done';
      result: DeviceResult;
      events: number;
      eventHash: number;
      threadId: number;
      /** Fences it created and never signalled (signalled -ECANCELED as it finished): a fence leak. */
      pendingFences: number;
    }
  | { kind: 'failed'; error: string; callFailed: boolean; events: number; eventHash: number; threadId: number };
