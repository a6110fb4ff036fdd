/**
 * A device worker: one simulated device in its own thread. It maps every shared table the kernel
 * created, runs the device model against a `DeviceRuntime` whose waits are real Atomics sleeps, and
 * reaches the kernel thread only for the control plane (comlink). Its heartbeat word lets the kernel's
 * watchdog tell a slow device from a hung one.
 */
import { parentPort, receiveMessageOnPort, threadId, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { HbShared } from '../detect/hb.js';
import { WaitForShared } from '../detect/wait-for.js';
import { CpuCache } from '../kernel/cpu-cache.js';
import { dmaFenceWaitTimeout, FenceTable } from '../kernel/dma-fence.js';
import { dmaResvSleepOnLock, ResvTable } from '../kernel/dma-resv.js';
import { arenaBytes } from '../kernel/memory.js';
import { DeviceCallError, DeviceRuntime, mixEvent, setDeviceNames } from './device-runtime.js';
import { FenceLedger } from './fence-ledger.js';
import { LinkRing } from './link-ring.js';
import { createLogger } from './log.js';
import { Prng } from './prng.js';
import { type DeviceWorkerInit, type KernelRpc, opCode, type ToKernel, type ToWorker } from './protocol.js';
import type { AnyDeviceModel } from './scenario.js';
import { builtinModels } from './scenario.js';

const init = workerData as DeviceWorkerInit;
const log = createLogger(init.logLevel, init.prettyLog).child({ device: init.name });
const rpc = Comlink.wrap<KernelRpc>(nodeEndpoint(init.rpcPort));
const fences = FenceTable.attach(init.fencesSab, {
  onMisuse: (m) => void rpc.misuse(m.rule, m.message, { fence: m.fence }),
});
const task = Object.freeze({ pid: init.pid, comm: init.name, uid: 0, gid: 0 });
const resvs = ResvTable.attach(init.resvsSab, {
  fences,
  current: () => task,
  threadId,
  warn: (rule, message, objects) => void rpc.misuse(rule, message, objects),
});
setDeviceNames(init.deviceNames);
const beat = new Int32Array(init.heartbeat);
const arenas = init.arenas.map((a) => ({ ...a, bytes: arenaBytes(a) }));
/** Physical bytes by address, for the CPU cache's fills and write-backs in this thread. */
function physView(phys: number, n: number): Uint8Array {
  const pfn = Math.floor(phys / 4096);
  const a = arenas.find((x) => pfn >= x.basePfn && pfn < x.basePfn + x.pageCount);
  if (a === undefined) throw new Error(`physical address 0x${phys.toString(16)} is in no arena`);
  const off = phys - a.basePfn * 4096;
  return a.bytes.subarray(off, off + n);
}
const nap = new Int32Array(new SharedArrayBuffer(4));
let events = 0;
let hash = 0x811c9dc5;

const runtime = new DeviceRuntime({
  name: init.name,
  model: init.model,
  index: init.index,
  prng: new Prng(init.seed),
  fenceContext: init.fenceContext,
  blocking: {
    nowNs: () => Number(process.hrtime.bigint()),
    point: async () => {},
    busy: async (ns) => {
      const ms = (ns / 1e6) * init.timeScale;
      if (ms > 0) Atomics.wait(nap, 0, 0, ms);
    },
    waitFence: async (t, f, timeoutNs) => dmaFenceWaitTimeout(t, f, true, timeoutNs),
    push: async (ring, d) => ring.push(d) === 'pushed',
    waitLock: async (obj, holder) => {
      Atomics.store(beat, 1, opCode('lock'));
      dmaResvSleepOnLock(obj, holder, Number.POSITIVE_INFINITY);
    },
    pop: async (ring) => {
      // The runtime records a recv only once it returns; the watchdog must know we are blocked in one.
      Atomics.store(beat, 1, opCode('recv'));
      return ring.pop();
    },
    deliverPending: () => drained(undefined),
  },
  control: {
    allocate: async (heap, size) => drained(await rpc.allocate(heap, size)),
    release: (id) => rpc.release(id),
    attach: (id, dynamic) => rpc.attach(id, dynamic),
    detach: (att) => rpc.detach(att),
    map: (att, dir) => rpc.map(att, dir),
    unmap: (m) => rpc.unmap(m),
    evict: async (id) => drained(await rpc.evict(id)),
    cpuPages: (id) => rpc.cpuPages(id),
    cpuAccess: (id, begin, dir) => rpc.cpuAccess(id, begin, dir),
    bufferRef: (id) => rpc.bufferRef(id),
    resvIndexOf: (id) => rpc.resvIndexOf(id),
    misuse: (rule, message, objects, detail) => void rpc.misuse(rule, message, objects, detail),
    lockdep: (from, to, op) => void rpc.lockdep(from, to, op),
  },
  shared: {
    arenas,
    fences,
    resvs,
    cache: CpuCache.attach(init.cacheSab, physView),
    mappingWords: new Int32Array(init.mappingSab),
    ledger: FenceLedger.attach(init.ledgerSab),
    hb: init.hbSab === null ? null : HbShared.attach(init.hbSab),
    waitFor: WaitForShared.attach(init.waitForSab),
    task,
    ports: new Map(Object.entries(init.ports).map(([p, sab]) => [p, new LinkRing(sab)])),
  },
  // This worker's own synchronous destination: its lines never interleave with another thread's.
  log: (m, f) => {
    log.debug(f ?? {}, m);
    if (init.forwardLogs) post(f === undefined ? { kind: 'log', message: m } : { kind: 'log', message: m, fields: f });
  },
  // Wall time is not part of the hash: it differs on every run; the sequence of operations does not.
  record: (_timeNs, op, a, b, c) => {
    events++;
    hash = mixEvent(mixEvent(mixEvent(mixEvent(hash, op), a), b), c);
    Atomics.add(beat, 0, 1);
    Atomics.store(beat, 1, op);
  },
});

function onMessage(m: ToWorker): void {
  if (m.kind === 'move-notify') runtime.deliverMoveNotify(m.att);
}
parentPort?.on('message', onMessage);

/**
 * A control-plane call that may move buffers (allocate evicts under pressure, evict asks for it) makes the
 * kernel post move_notify before it posts the call's reply, so by the time the reply is here the message
 * is already queued on parentPort. Deliver it now, before the call returns, as the sim host does: left to a
 * later turn of the event loop, it could arrive after the device wrote through the moved mapping.
 */
function drained<T>(reply: T): T {
  if (parentPort === null) return reply;
  for (let m = receiveMessageOnPort(parentPort); m !== undefined; m = receiveMessageOnPort(parentPort)) {
    onMessage(m.message as ToWorker);
  }
  return reply;
}

async function loadModel(): Promise<AnyDeviceModel> {
  if (init.modelModule) {
    const mod = (await import(init.modelModule)) as { default?: AnyDeviceModel; model?: AnyDeviceModel };
    const model = mod.default ?? mod.model;
    if (!model) throw new Error(`${init.modelModule} exports no device model`);
    return model;
  }
  const model = builtinModels[init.model];
  if (!model) throw new Error(`unknown model ${init.model}`);
  return model;
}

function post(m: ToKernel): void {
  parentPort?.postMessage(m);
}

try {
  const model = await loadModel();
  const result = await model.run(runtime, init.knobs);
  runtime.finished();
  // -ECANCELED: anything left pending when a device finishes; the count is a fence leak to report.
  const pendingFences = runtime.abandonFences(-125);
  post({ kind: 'done', result, events, eventHash: hash >>> 0, threadId, pendingFences });
} catch (e) {
  runtime.finished(); // its clock as it stopped: the host fails its fences with it
  post({
    kind: 'failed',
    error: (e as Error).message,
    callFailed: e instanceof DeviceCallError,
    events,
    eventHash: hash >>> 0,
    threadId,
  });
}
