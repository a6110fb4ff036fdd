/**
 * `runScenario(scenario, options) → Report`: the library entry users call from their own tests, and what
 * the CLI runs. One seed drives everything: the scheduler (sim host), every device's PRNG stream, and the
 * order devices are started.
 *
 * The report says what was found (kernel warnings and device misuse as Findings, hangs, crashes), what
 * each device reported (a display's checksums prove which bytes it showed), whether the run matched the
 * scenario's expectations, and whether anything leaked. Its `eventHash` fingerprints the whole event log:
 * the same seed on the sim host gives the same hash.
 */
import { HbShared } from '../detect/hb.js';
import { WAIT_FENCE, type WaitStep } from '../detect/wait-for.js';
import { type DeviceResult, FRAME_FAILED, FRAME_UNREAD } from '../devices/device.js';
import {
  dmaFenceContextAlloc,
  dmaFenceGetStatus,
  dmaFencePut,
  dmaFenceSetError,
  dmaFenceSignal,
  FENCE_COUNT_MAX_LIMIT as FENCE_SLOT_SPAN,
} from '../kernel/dma-fence.js';
import { ResvTable } from '../kernel/dma-resv.js';
import { ECANCELED, ETIME } from '../kernel/errno.js';
import { Kernel, type KernelOptions } from '../kernel/kernel.js';
import type { WarningDetail, WarningSide } from '../kernel/trace.js';
import {
  type ControlPlane,
  DeviceCallError,
  DeviceRuntime,
  describeWait,
  FENCE_TIMED_OUT_BIT,
  mixEvent,
  setDeviceNames,
  stillBlocks,
} from './device-runtime.js';
import { type DeviceService, DeviceService as Service } from './device-service.js';
import { FenceLedger, ledgerEntriesFor } from './fence-ledger.js';
import { LinkRing } from './link-ring.js';
import { Prng } from './prng.js';
import type { AnyDeviceModel, Scenario } from './scenario.js';
import { SCENARIO_FENCES_DEFAULT, SCENARIO_RESVS_DEFAULT, withFrames } from './scenario.js';
import { createPolicy, formatScheduleSpec, RANDOM_SCHEDULE, type ScheduleSpec } from './schedule-policy.js';
import { HangError, type HangReport, SimScheduler, simBlocking } from './sim-host.js';

export type HostKind = 'sim' | 'worker';

export interface RunOptions {
  seed: number;
  host?: HostKind;
  /** Override the scenario's frame count. */
  frames?: number;
  /** Receives every device log line (on the worker host, forwarded as well as written to each worker's own destination). */
  log?: (device: string, message: string, fields?: Record<string, unknown>) => void;
  /** Worker host: the devices' log level (default $DMAFARM_LOG or 'info'; device lines are 'debug'). */
  logLevel?: string;
  /** Worker host: a device that makes no progress for this long is declared hung (ms). */
  watchdogMs?: number;
  /** Worker host: real seconds per simulated second of device `busy` time (0 runs flat out). */
  timeScale?: number;
  /** Happens-before race detection on buffer memory (default on; off only to measure its cost). */
  detect?: boolean;
  /** Sim host: the scheduling strategy (default random, uniform over the ready devices). */
  schedule?: ScheduleSpec;
}

/** One side of a two-sided finding: the detector's own record of it, unchanged. */
export type FindingSide = WarningSide;

/** A warning as the run reports it: by device name instead of pid, with what the detector knew. */
export interface Finding extends WarningDetail {
  rule: string;
  message: string;
  device: string | null;
  timeNs: number;
  objects: Record<string, string | number>;
  /** Occurrences folded into this one (dedupe per site). */
  count?: number;
}

/** Findings are the same finding when rule, device and site agree. */
export function findingKey(f: Finding): string {
  return `${f.rule}|${f.device ?? '-'}|${f.site ?? ''}`;
}

export interface Report {
  scenario: string;
  seed: number;
  host: HostKind;
  /** The run matched the scenario's expectations (no unexpected findings, none missing). */
  ok: boolean;
  findings: Finding[];
  unexpected: string[];
  missing: string[];
  devices: Record<string, DeviceResult | { error: string }>;
  hang: HangDetail | null;
  /** Pages, buffers or fences still held after every device was torn down. */
  leaks: { pages: number; buffers: number; fences: number };
  eventCount: number;
  /** FNV-1a over the event log: identical for identical runs. */
  eventHash: string;
  /** Virtual ns on the sim host, wall ns on the worker host. */
  durationNs: number;
  schedulerSteps: number;
  /** Worker host: each device's worker threadId (every device has its own thread). */
  threads?: Record<string, number>;
  /** Sim host: the schedule spec the run used ('random', 'pct:3', ...): `--schedule` replays it. */
  schedule?: string;
}

/** A device's own PRNG stream: a fixed function of the run seed and the device's position. */
export function deviceSeed(seed: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (index + 0x85ebca6b), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The run's event log, as a fingerprint: a hash over every event in order, and their count. */
class EventLog {
  count = 0;
  private h = 0x811c9dc5;
  add(device: number, timeNs: number, op: number, a: number, b: number, c: number): void {
    this.count++;
    this.h = mixEvent(mixEvent(mixEvent(mixEvent(mixEvent(mixEvent(this.h, device), timeNs), op), a), b), c);
  }
  get hash(): string {
    return (this.h >>> 0).toString(16).padStart(8, '0');
  }
}

export function directControl(service: DeviceService, device: string): ControlPlane {
  return {
    allocate: async (heap, size) => service.allocate(device, heap, size),
    release: async (id) => service.release(device, id),
    attach: async (id, dynamic) => service.attach(device, id, dynamic),
    detach: async (att) => service.detach(device, att),
    map: async (att, dir) => service.map(device, att, dir as 0 | 1 | 2),
    unmap: async (m) => service.unmap(device, m),
    evict: async (id) => service.evict(device, id),
    bufferRef: async (id) => service.bufferRef(id),
    resvIndexOf: async (id) => service.resvIndexOf(id),
    misuse: (rule, message, objects, detail) => service.misuse(device, rule, message, objects, detail),
    lockdep: (from, to, op) => service.lockdep(device, from, to, op),
    cpuPages: async (id) => service.cpuPages(device, id),
    cpuAccess: async (id, begin, dir) => service.cpuAccess(device, id, begin, dir as 0 | 1 | 2),
  };
}

/**
 * A device is gone mid-run (crashed, failed a call, hung): everything it still owed fails now, not at
 * teardown, so nobody downstream waits for it. Every unsignalled fence on its timeline — including the ones
 * it already sent on links — is signalled with `error`, its output links are closed (end of stream), and
 * its input links are closed for their producers (what they send from now on is dropped), so nobody
 * upstream waits for it either. Its accesses are over: each failed fence carries the clock it published
 * last (when it threw, or when it last blocked), so whoever waits on one is ordered after them.
 */
export function failDevice(
  kernel: Kernel,
  s: Scenario,
  ports: Map<string, Map<string, LinkRing>>,
  name: string,
  fenceContext: number,
  error: number,
  hb: HbShared | null,
): void {
  const t = kernel.fences;
  const index = Object.keys(s.devices).indexOf(name);
  for (const f of t.liveHandles()) {
    if (t.contextOf(f) !== fenceContext || dmaFenceGetStatus(t, f) !== 0) continue;
    if (index >= 0) hb?.releaseParked(index, t.slotIndexOf(f));
    dmaFenceSetError(t, f, error);
    dmaFenceSignal(t, f);
  }
  for (const l of s.links) {
    const [from, out] = l.from.split('.') as [string, string];
    const [to, input] = l.to.split('.') as [string, string];
    if (from === name) {
      const ring = ports.get(name)?.get(out);
      if (ring && !ring.closed) ring.close();
    }
    if (to === name) ports.get(name)?.get(input)?.closeReader();
  }
}

/** The race detector's shared state for a run, sized by the kernel's tables (null: detection off). */
export function createDetector(kernel: Kernel, options: RunOptions): HbShared | null {
  if (options.detect === false) return null;
  return HbShared.create({ fenceSlots: kernel.fences.capacity, resvSlots: kernel.resvs.capacity });
}

/**
 * Frames still queued on links when the run ends (after a hang or a crash) carry fence references nobody
 * will receive: drop them, as closing a pipe drops what is buffered in it. Returns how many frames.
 */
export function drainLinks(kernel: Kernel, ports: Map<string, Map<string, LinkRing>>): number {
  const rings = new Set<LinkRing>();
  for (const byPort of ports.values()) for (const r of byPort.values()) rings.add(r);
  let frames = 0;
  for (const ring of rings) {
    for (let d = ring.tryPop(); d !== null; d = ring.tryPop()) {
      frames++;
      if (d.fence && kernel.fences.isLive(d.fence)) dmaFencePut(kernel.fences, d.fence);
    }
  }
  return frames;
}

/**
 * A hang, as drm_sched and sync/info would tell it: who was stuck in what, the wait-for chain between them
 * (a cycle when there is one), and every device timeline's last signalled vs last emitted seqno.
 */
export interface HangDetail extends HangReport {
  /** The wait-for chain in words, one step per stuck device. */
  chain: string[];
  /** The chain closes on itself: a deadlock, not only a stall. */
  cycle: boolean;
  timelines: { device: string; signalled: number; emitted: number }[];
  /**
   * The fences the watchdog failed with -ETIME to end this hang (`camera#3`), after which the run went
   * on and their waiters passed the error on. Empty: nothing could be timed out and the hang ended the run.
   */
  timedOut: string[];
}

/** Watchdog timeouts one run recovers from, as a GPU reset does; the next hang ends the run. */
export const HANG_RECOVERIES_MAX = 8;

/**
 * The watchdog's memory over one run: the hangs it recovered from, and the devices whose jobs it timed out.
 * A device that is guilty of a second hang is not given another chance (as i915 bans a context that keeps
 * hanging the GPU): that hang ends the run, so a device that never signals costs two watchdog periods, not
 * one per frame.
 */
export class HangWatch {
  readonly recovered: HangDetail[] = [];
  private readonly guiltyBefore = new Set<number>();
  constructor(
    private readonly kernel: Kernel,
    private readonly s: Scenario,
    private readonly service: DeviceService,
    private readonly hb: HbShared | null,
  ) {}

  /** At a hang: true when it timed jobs out and the run may go on. */
  recover(hang: HangReport): boolean {
    if (this.recovered.length >= HANG_RECOVERIES_MAX) return false;
    const detail = recoverHang(this.kernel, this.s, this.service, this.hb, hang, this.guiltyBefore);
    if (detail === null) return false;
    this.recovered.push(detail);
    return true;
  }
}

/** What a hang looks like now: the chain of waits among the stuck devices and every timeline's progress. */
export function hangDetail(s: Scenario, service: DeviceService, hang: HangReport, timedOut: string[] = []): HangDetail {
  const names = Object.keys(s.devices);
  const { steps, cycle } = service.waitFor.hangChain(stuckIndices(s, hang));
  return {
    ...hang,
    chain: steps.map((st) => describeWait(st, names)),
    cycle,
    timelines: names.map((device, i) => ({ device, ...service.waitFor.timelineOf(i) })),
    timedOut,
  };
}

/**
 * A deadlock proven now: a cycle of waits in the wait-for table, every step checked to still block (fences
 * unsignalled, locks held) and none with a timeout. Nothing outside the cycle can end it, so the watchdog
 * need not wait its timeout (as the sim host recovers only when nothing is asleep either). The devices of
 * the first cycle found, or null.
 */
export function provenDeadlock(kernel: Kernel, s: Scenario, service: DeviceService): string[] | null {
  const names = Object.keys(s.devices);
  const blocks = stillBlocks(kernel.fences, service.waitFor, names.length);
  const still = (st: WaitStep): boolean => !st.timed && blocks(st);
  for (let d = 0; d < names.length; d++) {
    const cycle = service.waitFor.cycleFrom(d, names.length, still);
    if (cycle !== null) return cycle.map((st) => names[st.device] ?? `device${st.device}`);
  }
  return null;
}

function stuckIndices(s: Scenario, hang: HangReport): number[] {
  const names = Object.keys(s.devices);
  return hang.waiting.map((w) => names.indexOf(w.device)).filter((i) => i >= 0);
}

/**
 * The watchdog's way out of a hang (drm_sched's job timeout, then a reset): the jobs at the head of the
 * wait-for chains complete with -ETIME — the device fences stuck devices wait on whose owners are not
 * themselves stuck on a fence. In a cycle of fence waits, only the fence waited on the longest (the job
 * whose timer would fire first) times out, and the cycle unwinds from there. Their waiters wake and pass
 * the error on (a device that does not is told so: fence-error-ignored). Fences that are no device's
 * (arrays, chains, sw_sync) are left to their own signallers. Returns the hang's detail with the fences
 * timed out, or null when there was none to time out (a lock or link hang) or one of their devices was
 * timed out before (`guiltyBefore`, updated): then the hang ends the run.
 */
export function recoverHang(
  kernel: Kernel,
  s: Scenario,
  service: DeviceService,
  hb: HbShared | null,
  hang: HangReport,
  guiltyBefore: Set<number>,
): HangDetail | null {
  const names = Object.keys(s.devices);
  const waits: WaitStep[] = [];
  for (const d of stuckIndices(s, hang)) {
    const st = service.waitFor.stateOf(d);
    if (st !== null && st.kind === WAIT_FENCE && st.peer >= 0) waits.push(st);
  }
  const onFence = new Set(waits.map((w) => w.device));
  const heads = waits.filter((w) => !onFence.has(w.peer));
  const t = kernel.fences;
  const guilty: number[] = [];
  let oldest: WaitStep | null = null;
  for (const w of waits) if (oldest === null || w.since < oldest.since) oldest = w;
  for (const w of heads.length > 0 ? heads : oldest === null ? [] : [oldest]) {
    const f = w.b * FENCE_SLOT_SPAN + w.a;
    // The wait-for words name the fence by slot and generation; a freed or reused slot is not it.
    if (!t.isLive(f) || t.contextOf(f) !== w.c || t.seqnoOf(f) !== w.d || dmaFenceGetStatus(t, f) !== 0) continue;
    if (!guilty.includes(f)) guilty.push(f);
  }
  if (guilty.length === 0 || guilty.some((f) => guiltyBefore.has(t.auxOf(f)))) return null;
  for (const f of guilty) guiltyBefore.add(t.auxOf(f));
  const detail = hangDetail(
    s,
    service,
    hang,
    guilty.map((f) => `${names[t.auxOf(f)] ?? t.contextOf(f)}#${t.seqnoOf(f)}`),
  );
  for (const f of guilty) {
    // A reset ends the job and its accesses: its waiters are ordered after everything its device did.
    hb?.releaseParked(t.auxOf(f), t.slotIndexOf(f));
    t.orFlags(f, 1 << FENCE_TIMED_OUT_BIT);
    dmaFenceSetError(t, f, -ETIME);
    dmaFenceSignal(t, f);
  }
  return detail;
}

/** The kernel a scenario boots on either host: its memory, protected heaps and shared-table sizes. */
export function scenarioKernelOptions(s: Scenario): KernelOptions {
  const { fences, resvs, protected: protectedHeaps, ...memory } = s.kernel;
  return {
    memory,
    protectedHeaps,
    tables: { fences: fences ?? SCENARIO_FENCES_DEFAULT, resvs: resvs ?? SCENARIO_RESVS_DEFAULT },
  };
}

/** Wire each link's ring to the ports of its two devices. */
export function buildPorts(s: Scenario): Map<string, Map<string, LinkRing>> {
  const ports = new Map<string, Map<string, LinkRing>>();
  const names = Object.keys(s.devices);
  for (const name of names) ports.set(name, new Map());
  for (const l of s.links) {
    const [fd, fp] = l.from.split('.') as [string, string];
    const [td, tp] = l.to.split('.') as [string, string];
    const ring = LinkRing.create(l.capacity, { producer: names.indexOf(fd), consumer: names.indexOf(td) });
    ports.get(fd)?.set(fp, ring);
    ports.get(td)?.set(tp, ring);
  }
  return ports;
}

export function compareFindings(s: Scenario, findings: Finding[]): { unexpected: string[]; missing: string[] } {
  const found = new Set(findings.map((f) => f.rule));
  const expected = new Set(s.expect.findings);
  return {
    unexpected: [...found].filter((r) => !expected.has(r)).sort(),
    missing: [...expected].filter((r) => !found.has(r)).sort(),
  };
}

export async function runScenario(scenario: Scenario, options: RunOptions): Promise<Report> {
  const s = options.frames === undefined ? scenario : withFrames(scenario, options.frames);
  if ((options.host ?? 'sim') === 'worker') {
    const { runOnWorkers } = await import('./worker-host.js');
    return runOnWorkers(s, options);
  }
  return runOnSim(s, options);
}

async function runOnSim(s: Scenario, options: RunOptions): Promise<Report> {
  const seed = options.seed;
  const schedule = options.schedule ?? RANDOM_SCHEDULE;
  const sched = new SimScheduler(new Prng(deviceSeed(seed, 0xffff)), createPolicy(schedule));
  const kernel = new Kernel({ ...scenarioKernelOptions(s), clockNs: () => sched.clockNs });
  const names = Object.keys(s.devices);
  setDeviceNames(names);
  const hb = createDetector(kernel, options);
  const runtimes = new Map<string, DeviceRuntime>();
  const service = new Service(kernel, {
    moveNotify: (device, att) => runtimes.get(device)?.deliverMoveNotify(att),
  });
  const ports = buildPorts(s);
  const log = new EventLog();
  const results: Record<string, DeviceResult | { error: string }> = {};
  const extra: Finding[] = [];
  const contexts = new Map<string, number>();
  names.forEach((name, i) => {
    const task = service.registerDevice(name, s.devices[name]?.model ?? name);
    sched.add(name);
    contexts.set(name, dmaFenceContextAlloc(kernel.fences, 1));
    runtimes.set(
      name,
      new DeviceRuntime({
        name,
        model: s.devices[name]?.model ?? '',
        index: i,
        prng: new Prng(deviceSeed(seed, i)),
        blocking: simBlocking(sched, name),
        control: directControl(service, name),
        shared: {
          arenas: kernel.mem.arenaList(),
          fences: kernel.fences,
          // The device's own view of the resv table: its task owns the locks it takes, and misuse it
          // commits there is its own (as in a worker).
          resvs: ResvTable.attach(kernel.resvs.sab, {
            fences: kernel.fences,
            current: () => task,
            threadId: 0,
            warn: (rule, message, objects) => service.misuse(name, rule, message, objects),
          }),
          waitFor: service.waitFor,
          task,
          cache: kernel.cache,
          mappingWords: service.mappingWords,
          ports: ports.get(name) ?? new Map(),
          ledger: FenceLedger.create(ledgerEntriesFor(kernel)),
          hb,
        },
        log: (m, f) => options.log?.(name, m, f),
        record: (t, op, a, b, c) => log.add(i, t, op, a, b, c),
        fenceContext: contexts.get(name) as number,
      }),
    );
  });
  const watch = new HangWatch(kernel, s, service, hb);
  sched.onHang((h) => watch.recover(h));
  const hang = await sched.run((name) => {
    const rt = runtimes.get(name) as DeviceRuntime;
    const model = s.models[s.devices[name]?.model ?? ''] as AnyDeviceModel;
    void (async () => {
      try {
        results[name] = await model.run(rt, s.parsedKnobs[name]);
        rt.finished();
      } catch (e) {
        results[name] = { error: (e as Error).message };
        rt.finished(); // its clock as it stopped, for the fences failed now
        failDevice(kernel, s, ports, name, contexts.get(name) as number, -ETIME, hb);
        if (!(e instanceof HangError)) {
          extra.push({
            rule: e instanceof DeviceCallError ? 'device-call-failed' : 'device-crashed',
            message: `${name}: ${(e as Error).message}`,
            device: name,
            timeNs: sched.clockNs,
            objects: {},
          });
        }
      } finally {
        sched.finish(name);
      }
    })();
  });
  const abandon = (name: string, error: number): number => runtimes.get(name)?.abandonFences(error) ?? 0;
  const { clockNs, steps } = sched;
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
    durationNs: clockNs,
    steps,
    host: 'sim',
  });
  // Every device has finished and the report is built: the next run on this thread may reuse the arenas,
  // the CPU cache and the detector's shared state.
  kernel.recycle();
  hb?.recycle();
  return { ...report, schedule: formatScheduleSpec(schedule) };
}

/**
 * What arrived is what was sent: on every link whose producer and consumer both report per-frame
 * `checksums` (a camera of what it wrote, a display of what it scanned out), the sequences must agree.
 * A device that transforms frames (decoder, GPU) reports its output as `checksums` and what it read on
 * each input port as `received:<port>`; that is what its producer's checksums are held against.
 * A difference means the consumer read bytes the producer had not finished (or had already replaced).
 */
export function contentChecks(
  s: Scenario,
  results: Record<string, DeviceResult | { error: string }>,
  timeNs: number,
): Finding[] {
  const out: Finding[] = [];
  for (const l of s.links) {
    const from = l.from.split('.')[0] as string;
    const [to, port] = l.to.split('.') as [string, string];
    const a = results[from] as { checksums?: unknown } | undefined;
    const b = results[to] as Record<string, unknown> | undefined;
    const received = b?.[`received:${port}`] ?? b?.checksums;
    if (!Array.isArray(a?.checksums) || !Array.isArray(received)) continue;
    const sent = a.checksums as number[];
    const shown = received as number[];
    // A failed frame was never produced or never read, an unread one (protected) never looked at: there are
    // no bytes to compare.
    const skip = (c: number | undefined) => c === FRAME_FAILED || c === FRAME_UNREAD;
    const bad = shown.flatMap((c, i) => (c !== sent[i] && !skip(c) && !skip(sent[i]) ? [i] : []));
    if (bad.length > 0) {
      out.push({
        rule: 'content-mismatch',
        message: `${to} received bytes that differ from what ${from} wrote, in frames ${bad.slice(0, 8).join(', ')}${bad.length > 8 ? ', …' : ''}`,
        device: to,
        timeNs,
        objects: { producer: from, consumer: to, frames: bad.length },
      });
    }
  }
  return out;
}

/**
 * One finding per site: the first occurrence, with `count` the number folded into it. `dropped` warnings
 * did not fit the kernel's bounded list: they are reported as one finding so that nothing is lost silently.
 */
export function dedupeFindings(all: Finding[], dropped = 0): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const f of all) {
    const k = findingKey(f);
    const seen = byKey.get(k);
    if (seen === undefined) byKey.set(k, f);
    else seen.count = (seen.count ?? 1) + (f.count ?? 1);
  }
  const out = [...byKey.values()];
  if (dropped > 0) {
    out.push({
      rule: 'findings-dropped',
      message: `${dropped} further warnings did not fit the kernel's warning list (raise limits.warningsKeptMax)`,
      device: null,
      timeNs: 0,
      objects: { dropped },
    });
  }
  return out;
}

/** Tear every device down, collect findings and leaks: shared by both hosts. */
/** What a host hands `finish` when its devices are done. */
export interface RunEnd {
  s: Scenario;
  options: RunOptions;
  kernel: Kernel;
  service: DeviceService;
  /** A device's still-pending fences end with `error`; returns how many there were. */
  abandon: (device: string, error: number) => number;
  log: { count: number; hash: string };
  results: Record<string, DeviceResult | { error: string }>;
  /** Findings the host made itself (crashes, failed calls). */
  extra: Finding[];
  /** The run's links: what is still queued on them is dropped first (`drainLinks`). */
  ports: Map<string, Map<string, LinkRing>>;
  /** The hang watch, with the hangs it recovered from. */
  watch: HangWatch;
  /** The hang that ended the run, if one did. */
  fatal: HangReport | null;
  durationNs: number;
  steps: number;
  host: HostKind;
}

export function finish(end: RunEnd): Report {
  const { s, options, kernel, service, abandon, log, results, extra, ports, watch, fatal, durationNs, steps, host } =
    end;
  drainLinks(kernel, ports);
  const recovered = watch.recovered;
  const hangs = fatal === null ? [...recovered] : [...recovered, hangDetail(s, service, fatal)];
  for (const hang of hangs) {
    const timelines = hang.timelines.map((t) => `${t.device} signalled=${t.signalled} emitted=${t.emitted}`);
    extra.push({
      rule: 'hang',
      message: [
        `${hang.proven ? 'deadlocked (proven by the wait-for walk, not waited out)' : 'nothing could make progress'}: ${hang.waiting.map((w) => `${w.device} in ${w.op}`).join('; ')}`,
        `wait-for ${hang.cycle ? 'cycle' : 'chain'}: ${hang.chain.join('; ')}${hang.cycle ? ' (back to the start)' : ''}`,
        `timelines: ${timelines.join(' | ')}`,
        hang.timedOut.length > 0
          ? `watchdog: failed ${hang.timedOut.join(', ')} with -ETIME; their waiters passed the error on and the run went on`
          : 'watchdog: nothing to time out; the stuck devices were stopped and the run ended',
      ].join('\n  '),
      device: null,
      timeNs: hang.timeNs,
      objects: Object.fromEntries(hang.waiting.map((w) => [w.device, w.op])),
    });
  }
  const hang = hangs[0] ?? null;
  for (const name of Object.keys(s.devices)) {
    if ('error' in (results[name] ?? { error: 'never ran' })) service.markStopped(name);
  }
  for (const name of Object.keys(s.devices)) {
    const crashed = 'error' in (results[name] ?? { error: 'never ran' });
    const pending = abandon(name, crashed ? -ETIME : -ECANCELED);
    if (pending > 0 && !crashed) {
      extra.push({
        rule: 'fence-never-signalled',
        message: `${name} finished with ${pending} fence(s) it never signalled`,
        device: name,
        timeNs: durationNs,
        objects: { pending },
      });
    }
    service.teardown(name);
  }
  extra.push(...contentChecks(s, results, durationNs));
  const findings = dedupeFindings(
    [
      ...kernel.warnings.map((w): Finding => {
        const f: Finding = {
          rule: w.rule,
          message: w.message,
          device: typeof w.objects.device === 'string' ? w.objects.device : null,
          timeNs: w.timeNs,
          objects: w.objects,
          ...w.detail,
        };
        const n = service.occurrences.get(findingKey(f));
        if (n !== undefined && n > 1) f.count = n;
        return f;
      }),
      ...extra,
    ],
    kernel.warningCount - kernel.warnings.length,
  );
  let pages = 0;
  for (const u of kernel.memoryUsage()) pages += u.totalPages - u.freePages;
  const { unexpected, missing } = compareFindings(s, findings);
  return {
    scenario: s.name,
    seed: options.seed,
    host,
    ok: unexpected.length === 0 && missing.length === 0,
    findings,
    unexpected,
    missing,
    devices: results,
    hang,
    leaks: { pages, buffers: kernel.dmaBufList.bufs.size, fences: kernel.fences.liveCount },
    eventCount: log.count,
    eventHash: log.hash,
    durationNs,
    schedulerSteps: steps,
  };
}
