/**
 * From a happens-before race (hb.ts) to a finding: which catalog class it is, the two sides in words,
 * the edge that was missing and how to add it.
 *
 * Classes (docs/findings.md has each with an example and the fix):
 * - `dmabuf-hazard-raw`: a read of bytes another device wrote, with no fence edge from that write;
 * - `fence-wait-stale`: the same, but the reader's last fence wait was on the writer's timeline — for an
 *   older job (it waited for frame N−1's fence and read frame N);
 * - `dmabuf-hazard-war`: a write over bytes another device read, without waiting for its READ fence;
 * - `dmabuf-hazard-waw`: a write over bytes another device wrote, ordered with that device's timeline
 *   only up to an older point;
 * - `dmabuf-hazard-wrw`: two writers of the same bytes that never synchronised at all (two queues with
 *   no fence between them).
 *
 * What the runtime knows about the current device's synchronisation on the buffer (`RaceSync`) refines
 * the class when the cause is a resv usage rather than a missing wait:
 * - `resv-bookkeep-nosync`: the current device relied on implicit sync (waitResv, SYNC START), and the
 *   other side's covering fence sat in the resv as BOOKKEEP, which no implicit wait includes
 *   (include/linux/dma-resv.h: BOOKKEEP is "no implicit sync");
 * - `resv-usage-downgrade`: a reader relied on implicit sync (it waited for WRITE fences) and the
 *   writer's covering fence sat in the resv only as READ;
 * - `cpu-sync-not-fence`: a CPU read inside a DMA_BUF_IOCTL_SYNC START bracket, and the writer's fence
 *   was never in the resv: dma_buf_begin_cpu_access waits only for the resv's fences
 *   (drivers/dma-buf/dma-buf.c, `dma_resv_wait_timeout(resv, dma_resv_usage_rw(write), …)`); SYNC "only
 *   provides cache coherency" (include/uapi/linux/dma-buf.h), it is no wait for a fence that travels
 *   with the frame.
 */
import { DMA_RESV_USAGE_BOOKKEEP, DMA_RESV_USAGE_READ, type DmaResvUsage } from '../kernel/dma-resv.js';
import type { WarningDetail, WarningSide } from '../kernel/trace.js';
import { OPS } from '../workers/protocol.js';
import type { HbRace, HbSide } from './hb.js';
import { usageName } from './sync-rules.js';

/** The current device's synchronisation on the buffer, as its runtime saw it (all optional). */
export interface RaceSync {
  /** The current access is a CPU access inside an open DMA_BUF_IOCTL_SYNC START bracket. */
  cpuBracket: boolean;
  /** The usage of the current device's last implicit wait on this buffer's resv; null: it never waited on it. */
  resvWait: DmaResvUsage | null;
  /** The lowest usage the previous side's covering fence had in the resv at that wait; null: not there. */
  covering: DmaResvUsage | null;
}

const NO_SYNC: RaceSync = { cpuBracket: false, resvWait: null, covering: null };

export interface RaceFinding {
  rule: string;
  message: string;
  objects: Record<string, string | number>;
  detail: WarningDetail;
}

export function raceRule(race: HbRace, sync: RaceSync = NO_SYNC): string {
  // An implicit wait that could not have seen the covering fence: BOOKKEEP is skipped by every implicit
  // wait, whatever side of the race the fence covers.
  const implicit = sync.resvWait !== null;
  if (implicit && sync.covering === DMA_RESV_USAGE_BOOKKEEP) return 'resv-bookkeep-nosync';
  switch (race.kind) {
    case 'RAW': {
      // Stale only if the reader's last fence wait was on the writer's timeline, for an older job: an
      // ordering it got some other way (a resv lock it shared with the writer) is no fence wait at all.
      const c = race.current;
      const p = race.previous;
      if (c.waitedCtx === p.tid + 1 && c.waitedSeqno < p.job) return 'fence-wait-stale';
      if (implicit && sync.covering === DMA_RESV_USAGE_READ && (sync.resvWait ?? 0) < DMA_RESV_USAGE_READ) {
        return 'resv-usage-downgrade';
      }
      if (implicit && sync.cpuBracket && sync.covering === null) return 'cpu-sync-not-fence';
      return 'dmabuf-hazard-raw';
    }
    case 'WAR':
      return 'dmabuf-hazard-war';
    default:
      return race.syncedClock > 0 ? 'dmabuf-hazard-waw' : 'dmabuf-hazard-wrw';
  }
}

function opName(op: number): string {
  return OPS[op] ?? 'access';
}

function side(s: HbSide, bufferId: number, name: (tid: number) => string): WarningSide {
  return {
    device: name(s.tid),
    op: opName(s.op),
    job: s.job,
    buffer: bufferId,
    range: [s.lo, s.hi],
    timeNs: s.timeNs,
    waited: s.waitedCtx > 0 ? [`${name(s.waitedCtx - 1)}#${s.waitedSeqno}`] : [],
  };
}

/** `name(tid)` names a device by its index (its timeline). */
export function describeRace(
  race: HbRace,
  bufferId: number,
  name: (tid: number) => string,
  sync: RaceSync = NO_SYNC,
): RaceFinding {
  const rule = raceRule(race, sync);
  const cur = side(race.current, bufferId, name);
  const prev = side(race.previous, bufferId, name);
  const range = `[0x${prev.range[0].toString(16)}, 0x${prev.range[1].toString(16)})`;
  const what = race.kind === 'RAW' ? 'read' : 'write';
  const prevWhat = race.kind === 'WAR' ? 'read' : 'write';
  const fence = `${prev.device}#${prev.job}`;
  let missingEdge: string;
  let hint: string;
  switch (rule) {
    case 'dmabuf-hazard-raw':
      missingEdge = `${cur.device} never waited on a fence of ${prev.device} before its ${cur.op}; ${prev.device}'s ${prev.op} (job ${prev.job}) is signalled by fence ${fence}`;
      hint = `wait on the frame's fence (${fence}) or on the buffer's WRITE fences (waitResv(buf, WRITE)) before reading`;
      break;
    case 'fence-wait-stale':
      missingEdge = `${cur.device} waited on ${prev.device}'s timeline only up to an older point; the ${prev.op} it read is ordered by fence ${fence}`;
      hint = `wait on the fence that comes with this frame (${fence}), not one from an earlier frame`;
      break;
    case 'dmabuf-hazard-war':
      // Seen in this order the read came first; which side lacks the edge depends on intent: the writer
      // recycled a buffer still being read, or the reader read a frame before its write fence signalled.
      missingEdge = `${cur.device}'s write (job ${cur.job}) is not ordered after ${prev.device}'s read (job ${prev.job}): ${cur.device} did not wait for ${prev.device}'s READ fence, or ${prev.device} read before the fence of ${cur.device}'s write signalled`;
      hint = `a producer reusing a buffer waits on its READ fences (waitResv(buf, READ)); a consumer waits on the frame's fence before reading; a producer signals only after writing`;
      break;
    case 'dmabuf-hazard-waw':
      missingEdge = `${cur.device} synchronised with ${prev.device} only up to an older point; ${prev.device}'s ${prev.op} (job ${prev.job}) is not ordered before this write`;
      hint = `wait on the other writer's latest fence (${fence}) or the buffer's WRITE fences before writing`;
      break;
    case 'cpu-sync-not-fence':
      missingEdge = `${cur.device}'s CPU ${cur.op} is inside a DMA_BUF_IOCTL_SYNC START bracket, but START waits only for the fences in the buffer's resv, and ${prev.device}'s fence ${fence} for its ${prev.op} was never there (it travels with the frame)`;
      hint = `wait on the frame's fence (${fence}) before DMA_BUF_IOCTL_SYNC START: SYNC only provides cache coherency, it does not wait for explicitly synchronised work`;
      break;
    case 'resv-bookkeep-nosync':
      missingEdge = `${cur.device} relied on implicit sync (it waited on the buffer's resv for usage ≤ ${usageName(sync.resvWait ?? 0)}), but ${prev.device}'s fence ${fence} for its ${prev.op} sat there as BOOKKEEP, which no implicit wait includes`;
      hint = `a consumer of an explicitly synchronised buffer waits on the fence it was handed (${fence}); a producer whose consumers use implicit sync adds its fence as ${race.kind === 'WAR' ? 'READ' : 'WRITE'}`;
      break;
    case 'resv-usage-downgrade':
      missingEdge = `${cur.device} waited for the buffer's WRITE fences, but ${prev.device}'s fence ${fence}, which covers its ${prev.op}, sat in the resv only as READ`;
      hint = `${prev.device} adds the fence of a job that writes the buffer as DMA_RESV_USAGE_WRITE (readers wait only for WRITE fences)`;
      break;
    default:
      missingEdge = `${cur.device} and ${prev.device} both write these bytes and never synchronised (no fence between their queues)`;
      hint = `make one writer wait on the other's fence, or give each its own buffer`;
  }
  return {
    rule,
    message: `${race.kind} race on buffer ${bufferId} ${range}: ${what} by ${cur.device} (${cur.op}, job ${cur.job}) vs earlier ${prevWhat} by ${prev.device} (${prev.op}, job ${prev.job})`,
    objects: {
      buffer: bufferId,
      kind: race.kind,
      lo: prev.range[0],
      hi: prev.range[1],
      previousDevice: prev.device,
    },
    detail: {
      // Stable across seeds and schedules: who did what to whom (buffer ids and jobs vary).
      site: `${prev.device}.${prev.op}>${cur.device}.${cur.op}`,
      sides: [cur, prev],
      missingEdge,
      hint,
    },
  };
}
