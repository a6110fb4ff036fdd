/**
 * Findings as text, in the shape ThreadSanitizer made familiar: a banner, both sides of a race (device,
 * operation, job, buffer range, virtual time, the fences each side had waited on), the missing edge in
 * words, a fix hint, a `SUMMARY:` line that names the site, and the one command that replays it.
 * Findings without two sides print as one line with their count. Wall-clock fields are never printed,
 * so a replay on the sim host prints the same text byte for byte.
 */
import type { WarningSide } from '../kernel/trace.js';

/** The fields of a finding this formatter reads (run-scenario's Finding has them all). */
export interface FindingText {
  rule: string;
  message: string;
  device: string | null;
  site?: string;
  sides?: WarningSide[];
  missingEdge?: string;
  hint?: string;
  count?: number;
}

const BANNER = '==================';

function ms(ns: number): string {
  return `${(ns / 1e6).toFixed(3)}ms`;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function sideLine(label: string, s: WarningSide): string {
  const waited = s.waited.length > 0 ? s.waited.join(', ') : 'nothing';
  return (
    `  ${label} by ${s.device} (${s.op}) job ${s.job} on buffer ${s.buffer} ` +
    `[${hex(s.range[0])}, ${hex(s.range[1])}) at t=${ms(s.timeNs)}; had waited on: ${waited}`
  );
}

/** The text block of one finding; `repro` is the command that replays the run (or null). */
export function formatFinding(f: FindingText, repro: string | null): string[] {
  const times = (f.count ?? 1) > 1 ? ` (seen ${f.count} times)` : '';
  if (f.sides === undefined || f.sides.length < 2) {
    return [`  ${f.rule}: ${f.message}${times}`];
  }
  const [cur, prev] = f.sides as [WarningSide, WarningSide];
  const write = (s: WarningSide) => !/read|checksum/.test(s.op);
  const lines = [
    BANNER,
    `WARNING: dmafarm: ${f.rule}: ${f.message}`,
    sideLine(write(cur) ? 'Write' : 'Read ', cur),
    sideLine(write(prev) ? 'Previous write' : 'Previous read ', prev),
  ];
  if (f.missingEdge) lines.push(`  missing edge: ${f.missingEdge}`);
  if (f.hint) lines.push(`  fix: ${f.hint}`);
  if (times) lines.push(`  ${times.trim().replace(/^\(|\)$/g, '')} at this site`);
  lines.push(`SUMMARY: dmafarm: ${f.rule} ${f.site ?? f.device ?? ''}`.trimEnd());
  if (repro !== null) lines.push(`repro: ${repro}`);
  lines.push(BANNER);
  return lines;
}
