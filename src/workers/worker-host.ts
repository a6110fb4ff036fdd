/**
 * The worker host: every device in its own worker_thread, for real parallelism and contention figures.
 *
 * Contract:
 * - The kernel stays on this thread and never blocks for long: it serves each device's control plane
 *   (comlink over a MessageChannel of its own) and delivers move_notify as a message.
 * - Devices share memory, fences, resv objects and links with the kernel and each other through
 *   SharedArrayBuffers; no buffer byte is ever posted.
 * - A device that throws is reported (`device-crashed`, or `device-call-failed` for a kernel call it did
 *   not expect to fail). A run where no unfinished device shows progress for `watchdogMs` is a hang. The
 *   watchdog first times out the jobs at the head of the wait-for chains (their fences complete with
 *   -ETIME, the waiters pass the error on, the run goes on: `recoverHang`); a hang it cannot end that way,
 *   or one hang too many, terminates the stuck workers, reported with the operation each was in. A device
 *   that is gone has its pending fences signalled with -ETIME (so its consumers wake), its attachments,
 *   mappings and buffers reclaimed, and the run ends: the CLI never hangs.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { DeviceResult } from '../devices/device.js';
import { dmaFenceContextAlloc, dmaFenceGetStatus, dmaFenceSetError, dmaFenceSignal } from '../kernel/dma-fence.js';
import { ETIME } from '../kernel/errno.js';
import { Kernel } from '../kernel/kernel.js';
import { abandonLedger } from './device-runtime.js';
import { DeviceService } from './device-service.js';
import { FenceLedger, ledgerEntriesFor } from './fence-ledger.js';
import { logLevel } from './log.js';
import { type DeviceWorkerInit, type KernelRpc, OPS, type ToKernel, type ToWorker } from './protocol.js';
import {
  buildPorts,
  createDetector,
  deviceSeed,
  type Finding,
  failDevice,
  finish,
  HangWatch,
  provenDeadlock,
  type Report,
  type RunOptions,
  scenarioKernelOptions,
} from './run-scenario.js';
import { builtinModels, type Scenario } from './scenario.js';
import type { HangReport } from './sim-host.js';

export const WATCHDOG_MS_DEFAULT = 10_000;
/** Extra time a device may take to start (thread, modules) before the watchdog counts it as stuck. */
export const STARTUP_GRACE_MS = 30_000;
/** A heartbeat for a name with no slot (never: the cycle's names come from the scenario's devices). */
const ZERO = new Int32Array(2);

/** Where the worker entry is: compiled JS runs directly; TypeScript sources go through tsx. */
function workerEntry(): { url: URL; module?: string } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return {
      url: new URL('./ts-worker-entry.mjs', here),
      module: new URL('./device-worker.ts', here).href,
    };
  }
  return { url: new URL('./device-worker.js', here) };
}

interface DeviceSlot {
  name: string;
  worker: Worker;
  heartbeat: Int32Array;
  /** The fence references the device holds (read after its worker is gone). */
  ledger: FenceLedger;
  context: number;
  done: boolean;
  threadId: number;
}

export async function runOnWorkers(s: Scenario, options: RunOptions): Promise<Report> {
  const started = process.hrtime.bigint();
  const kernel = new Kernel(scenarioKernelOptions(s));
  const hb = createDetector(kernel, options);
  const names = Object.keys(s.devices);
  const slots = new Map<string, DeviceSlot>();
  /** Fences each device that finished normally had left unsignalled (reported as fence-never-signalled). */
  const pendingAtFinish = new Map<string, number>();
  const service = new DeviceService(kernel, {
    moveNotify: (device, att) => slots.get(device)?.worker.postMessage({ kind: 'move-notify', att } satisfies ToWorker),
  });
  const ports = buildPorts(s);
  const results: Record<string, DeviceResult | { error: string }> = {};
  const extra: Finding[] = [];
  let events = 0;
  let hashXor = 0;
  const entry = workerEntry();
  const timeScale = options.timeScale ?? 1;
  for (const [name, d] of Object.entries(s.devices)) {
    const m = s.models[d.model] as { module?: string } | undefined;
    if (!(d.model in builtinModels) && !m?.module) {
      throw new Error(
        `devices.${name}.model: '${d.model}' cannot run on the worker host: give the model a \`module: import.meta.url\``,
      );
    }
  }

  const finished = names.map((name, index) => {
    const task = service.registerDevice(name, s.devices[name]?.model ?? name);
    const { port1, port2 } = new MessageChannel();
    const rpc: KernelRpc = {
      allocate: (heap, size) => service.allocate(name, heap, size),
      release: (id) => service.release(name, id),
      attach: (id, dynamic) => service.attach(name, id, dynamic),
      detach: (att) => service.detach(name, att),
      map: (att, dir) => service.map(name, att, dir as 0 | 1 | 2),
      unmap: (m) => service.unmap(name, m),
      evict: (id) => service.evict(name, id),
      bufferRef: (id) => service.bufferRef(id),
      resvIndexOf: (id) => service.resvIndexOf(id),
      misuse: (rule, message, objects, detail) => service.misuse(name, rule, message, objects, detail),
      lockdep: (from, to, op) => service.lockdep(name, from, to, op),
      cpuPages: (id) => service.cpuPages(name, id),
      cpuAccess: (id, begin, dir) => service.cpuAccess(name, id, begin, dir as 0 | 1 | 2),
    };
    Comlink.expose(rpc, nodeEndpoint(port1));
    const heartbeat = new SharedArrayBuffer(8);
    const ledger = FenceLedger.create(ledgerEntriesFor(kernel));
    const model = s.devices[name]?.model ?? '';
    const init: DeviceWorkerInit = {
      ...(entry.module ? { module: entry.module } : {}),
      name,
      model,
      knobs: s.parsedKnobs[name],
      index,
      seed: deviceSeed(options.seed, index),
      pid: task.pid,
      deviceNames: names,
      fenceContext: dmaFenceContextAlloc(kernel.fences, 1),
      arenas: kernel.mem
        .arenaList()
        .map((a) => ({ name: a.name, basePfn: a.basePfn, pageCount: a.pageCount, sab: a.sab, memory: a.memory })),
      fencesSab: kernel.fences.sab,
      cacheSab: kernel.cache.sab,
      resvsSab: kernel.resvs.sab,
      mappingSab: service.mappingWords.buffer as SharedArrayBuffer,
      ports: Object.fromEntries([...(ports.get(name) ?? new Map()).entries()].map(([p, r]) => [p, r.sab])),
      heartbeat,
      ledgerSab: ledger.sab,
      hbSab: hb?.sab ?? null,
      waitForSab: service.waitFor.sab,
      rpcPort: port2,
      timeScale,
      logLevel: options.logLevel ?? logLevel(),
      prettyLog: process.stderr.isTTY === true,
      forwardLogs: options.log !== undefined,
    };
    // Built-in models are found by name in the worker; a user's own model names its module.
    const own = s.models[model] as { module?: string } | undefined;
    if (!(model in builtinModels) && own?.module) init.modelModule = own.module;
    const worker = new Worker(entry.url, { workerData: init, transferList: [port2] });
    const slot: DeviceSlot = {
      name,
      worker,
      heartbeat: new Int32Array(heartbeat),
      ledger,
      context: init.fenceContext,
      done: false,
      threadId: worker.threadId,
    };
    slots.set(name, slot);
    return new Promise<void>((resolve) => {
      const settle = (): void => {
        slot.done = true;
        port1.close();
        resolve();
      };
      const gone = (): void => failDevice(kernel, s, ports, name, init.fenceContext, -ETIME, hb);
      worker.on('message', (m: ToKernel) => {
        if (m.kind === 'log') {
          options.log?.(name, m.message, m.fields);
          return;
        }
        events += m.events;
        hashXor ^= m.eventHash;
        // The device's last word: its control-plane port and message listener would keep the thread alive.
        void worker.terminate();
        if (m.kind === 'done') {
          results[name] = m.result;
          pendingAtFinish.set(name, m.pendingFences);
        } else {
          gone();
          results[name] = { error: m.error };
          extra.push({
            rule: m.callFailed ? 'device-call-failed' : 'device-crashed',
            message: `${name}: ${m.error}`,
            device: name,
            timeNs: Number(process.hrtime.bigint() - started),
            objects: {},
          });
        }
      });
      worker.on('error', (e) => {
        gone();
        results[name] ??= { error: e.message };
        extra.push({ rule: 'device-crashed', message: `${name}: ${e.message}`, device: name, timeNs: 0, objects: {} });
      });
      worker.on('exit', () => {
        if (results[name] === undefined) {
          gone();
          results[name] = { error: 'worker exited without a result' };
        }
        settle();
      });
    });
  });

  const watch = new HangWatch(kernel, s, service, hb);
  const hang = await watchdog(slots, options.watchdogMs ?? WATCHDOG_MS_DEFAULT, Promise.all(finished), {
    recover: (h) => watch.recover(h),
    deadlockReports: () => service.deadlockReports,
    deadlock: () => provenDeadlock(kernel, s, service),
  });
  await Promise.all(finished);

  /** A device that did not finish: its unsignalled fences (found by its timeline) end with `error`. */
  const abandon = (name: string, error: number): number => {
    const slot = slots.get(name);
    // A device that finished abandoned its own fences, in its worker; what it left pending is a leak.
    if (slot !== undefined && !('error' in (results[name] ?? {}))) return pendingAtFinish.get(name) ?? 0;
    if (slot === undefined) return 0;
    const t = kernel.fences;
    let pending = 0;
    for (const f of t.liveHandles()) {
      if (t.contextOf(f) !== slot.context || dmaFenceGetStatus(t, f) !== 0) continue;
      pending++;
      dmaFenceSetError(t, f, error);
      dmaFenceSignal(t, f);
    }
    // The references its terminated worker held (frames it received, fences it created) die with it.
    abandonLedger(t, slot.ledger, error);
    return pending;
  };
  const log = { count: events, hash: (hashXor >>> 0).toString(16).padStart(8, '0') };
  const report = finish({
    s,
    options,
    kernel,
    service,
    abandon,
    log,
    results,
    extra,
    ports,
    watch,
    fatal: hang,
    durationNs: Number(process.hrtime.bigint() - started),
    steps: 0,
    host: 'worker',
  });
  return { ...report, threads: Object.fromEntries([...slots.values()].map((d) => [d.name, d.threadId])) } as Report;
}

/**
 * Wait for every device, watching heartbeats. When no unfinished device has moved for `watchdogMs`, the
 * run is hung: `recover` may end the hang (then the watch goes on); otherwise terminate the stuck workers
 * and say what each was doing. A deadlock a device reported (`deadlockReports` grew) is looked for at the
 * next tick and, proven (`deadlock`), handed to `recover` at once: nothing but a timeout could end it.
 */
async function watchdog(
  slots: Map<string, DeviceSlot>,
  watchdogMs: number,
  all: Promise<unknown>,
  hooks: {
    recover: (hang: HangReport) => boolean;
    deadlockReports: () => number;
    deadlock: () => string[] | null;
  },
): Promise<HangReport | null> {
  const { recover } = hooks;
  let deadlocksSeen = 0;
  let last = new Map([...slots].map(([n, s]) => [n, Atomics.load(s.heartbeat, 0)]));
  let lastChange = performance.now();
  const begun = lastChange;
  let finished = false;
  void all.then(() => {
    finished = true;
  });
  const tick = Math.max(10, Math.min(250, watchdogMs / 4));
  while (!finished) {
    await new Promise((r) => setTimeout(r, tick));
    if (finished) break;
    const now = new Map([...slots].map(([n, s]) => [n, Atomics.load(s.heartbeat, 0)]));
    const reports = hooks.deadlockReports();
    if (reports !== deadlocksSeen) {
      deadlocksSeen = reports;
      const cycle = hooks.deadlock();
      const report: HangReport | null =
        cycle === null
          ? null
          : {
              timeNs: Math.round(performance.now() * 1e6),
              waiting: cycle.map((d) => ({
                device: d,
                op: OPS[Atomics.load(slots.get(d)?.heartbeat ?? ZERO, 1)] ?? 'unknown',
              })),
              proven: true,
            };
      // A lock-only cycle has no job to time out: left to the watchdog, which ends the run.
      if (report !== null && recover(report)) {
        lastChange = performance.now();
        last = now;
        continue;
      }
    }
    // A device still starting (no heartbeat yet: its thread and modules are loading) counts as moving, for
    // a while: start-up on a loaded machine can take longer than a tight watchdog.
    const starting = [...slots.values()].some((s) => !s.done && (now.get(s.name) ?? 0) === 0);
    const moved =
      [...slots.values()].some((s) => !s.done && now.get(s.name) !== last.get(s.name)) ||
      (starting && performance.now() - begun < watchdogMs + STARTUP_GRACE_MS);
    last = now;
    if (moved) {
      lastChange = performance.now();
      continue;
    }
    if (performance.now() - lastChange < watchdogMs) continue;
    const stuck = [...slots.values()].filter((s) => !s.done);
    const report: HangReport = {
      timeNs: Math.round(performance.now() * 1e6),
      waiting: stuck.map((s) => ({ device: s.name, op: OPS[Atomics.load(s.heartbeat, 1)] ?? 'unknown' })),
    };
    if (recover(report)) {
      lastChange = performance.now();
      continue;
    }
    await Promise.all(stuck.map((s) => s.worker.terminate()));
    return report;
  }
  return null;
}
