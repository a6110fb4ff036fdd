/**
 * The fence references one device holds, in shared memory, so that whoever tears the device down can
 * drop them — even when the device's worker was terminated mid-run (hung or crashed) and its own memory
 * is gone.
 *
 * Contract:
 * - Only the device's own thread writes the ledger, while it runs. The host reads it only after the
 *   device is gone (its worker terminated, or its body returned on the sim host), so no lock is needed;
 *   the host reads with Atomics loads anyway, because `worker.terminate()` resolving is the only order
 *   between the two threads.
 * - An entry is a fence handle with how many references the device holds on it and whether the device
 *   created it (then it owes the fence a signal as well as a put).
 * - At most `entriesMax` distinct fences at once (FENCE_LEDGER_ENTRIES_MAX, or the run's fence table
 *   capacity when smaller: no device can hold more distinct fences than exist); one more is an error for
 *   the device (a model that keeps every fence it ever saw is leaking them).
 */
import { assert } from '../kernel/assert.js';

export const FENCE_LEDGER_ENTRIES_MAX = 4096;

/** Bytes of a ledger of `entriesMax` entries. */
function ledgerBytes(entriesMax: number): number {
  return entriesMax * 16 + 8;
}

/**
 * Per entry: the handle (Float64: handles exceed 2^31), references held, owner flag; after the entries,
 * the high-water mark (entries ever used), so the host scans only those — most devices hold a handful.
 */
export class FenceLedger {
  readonly sab: SharedArrayBuffer;
  readonly entriesMax: number;
  private readonly handles: Float64Array;
  /** [refs, own] per entry. */
  private readonly words: Int32Array;
  private readonly usedWord: Int32Array;
  /** This thread's index of live entries (the writer's; the reader scans). */
  private readonly index = new Map<number, number>();
  private readonly free: number[] = [];
  private used = 0;

  private constructor(sab: SharedArrayBuffer) {
    const n = (sab.byteLength - 8) / 16;
    assert(Number.isInteger(n) && n >= 1 && n <= FENCE_LEDGER_ENTRIES_MAX, 'fence ledger of the wrong size');
    this.sab = sab;
    this.entriesMax = n;
    this.handles = new Float64Array(sab, 0, n);
    this.words = new Int32Array(sab, n * 8, n * 2);
    this.usedWord = new Int32Array(sab, n * 16, 1);
  }

  /** A ledger of `entriesMax` entries (at most FENCE_LEDGER_ENTRIES_MAX). */
  static create(entriesMax = FENCE_LEDGER_ENTRIES_MAX): FenceLedger {
    assert(
      Number.isInteger(entriesMax) && entriesMax >= 1 && entriesMax <= FENCE_LEDGER_ENTRIES_MAX,
      'bad ledger size',
    );
    return new FenceLedger(new SharedArrayBuffer(ledgerBytes(entriesMax)));
  }
  static attach(sab: SharedArrayBuffer): FenceLedger {
    return new FenceLedger(sab);
  }

  /** One more reference on `fence`; `own` when the device created it. False when the ledger is full. */
  add(fence: number, own: boolean): boolean {
    let i = this.index.get(fence);
    if (i === undefined) {
      i = this.free.pop() ?? this.used;
      if (i >= this.entriesMax) return false;
      if (i === this.used) {
        this.used++;
        Atomics.store(this.usedWord, 0, this.used);
      }
      this.index.set(fence, i);
      Atomics.store(this.words, 2 * i, 0);
      Atomics.store(this.words, 2 * i + 1, 0);
      this.handles[i] = fence;
    }
    Atomics.add(this.words, 2 * i, 1);
    if (own) Atomics.store(this.words, 2 * i + 1, 1);
    return true;
  }

  /** One reference fewer (put, or handed on with a frame). False if the device held none. */
  drop(fence: number): boolean {
    const i = this.index.get(fence);
    if (i === undefined) return false;
    if (Atomics.sub(this.words, 2 * i, 1) === 1) {
      Atomics.store(this.words, 2 * i + 1, 0);
      this.handles[i] = 0;
      this.index.delete(fence);
      this.free.push(i);
    }
    return true;
  }

  /** Every fence still referenced: how many references, and whether the device created it. */
  entries(): { fence: number; refs: number; own: boolean }[] {
    const out: { fence: number; refs: number; own: boolean }[] = [];
    const used = Atomics.load(this.usedWord, 0);
    for (let i = 0; i < used; i++) {
      const refs = Atomics.load(this.words, 2 * i);
      if (refs > 0)
        out.push({ fence: this.handles[i] as number, refs, own: Atomics.load(this.words, 2 * i + 1) === 1 });
    }
    return out;
  }

  /** Forget everything (after the host dropped the references). */
  clear(): void {
    const used = Math.max(this.used, Atomics.load(this.usedWord, 0));
    this.words.fill(0, 0, 2 * used);
    this.handles.fill(0, 0, used);
    Atomics.store(this.usedWord, 0, 0);
    this.index.clear();
    this.free.length = 0;
    this.used = 0;
  }
}

/** A device's ledger needs no more entries than the run's fence table has fences. */
export function ledgerEntriesFor(kernel: { fences: { capacity: number } }): number {
  return Math.min(FENCE_LEDGER_ENTRIES_MAX, kernel.fences.capacity);
}
