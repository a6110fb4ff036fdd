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
 */
import type { WarningDetail, WarningSide } from '../kernel/trace.js';
import { OPS } from '../workers/protocol.js';
import type { HbRace, HbSide } from './hb.js';

export interface RaceFinding {
  rule: string;
  message: string;
  objects: Record<string, string | number>;
  detail: WarningDetail;
}

export function raceRule(race: HbRace): string {
  switch (race.kind) {
    case 'RAW': {
      // Stale only if the reader's last fence wait was on the writer's timeline, for an older job: an
      // ordering it got some other way (a resv lock it shared with the writer) is no fence wait at all.
      const c = race.current;
      const p = race.previous;
      return c.waitedCtx === p.tid + 1 && c.waitedSeqno < p.job ? 'fence-wait-stale' : 'dmabuf-hazard-raw';
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
export function describeRace(race: HbRace, bufferId: number, name: (tid: number) => string): RaceFinding {
  const rule = raceRule(race);
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
