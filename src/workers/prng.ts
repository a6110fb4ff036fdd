/**
 * The only source of randomness in dmafarm: one seed drives everything, so a run replays exactly.
 * A thin wrapper over pure-rand's xoroshiro128+ (fast-check's generator); integer-only API.
 */
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

export class Prng {
  readonly seed: number;
  private readonly rng: ReturnType<typeof xoroshiro128plus>;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer: ${seed}`);
    this.seed = seed;
    this.rng = xoroshiro128plus(seed | 0);
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return uniformInt(this.rng, min, max);
  }

  /** True with probability numerator/denominator (no floats, so no platform drift). */
  chance(numerator: number, denominator: number): boolean {
    return this.int(0, denominator - 1) < numerator;
  }

  /** Fill `bytes` with pseudo-random bytes. */
  fill(bytes: Uint8Array): Uint8Array {
    for (let i = 0; i < bytes.length; i += 4) {
      const v = this.int(0, 0xffffffff);
      for (let j = 0; j < 4 && i + j < bytes.length; j++) bytes[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return bytes;
  }
}

/** A fresh seed for runs that were not given one (printed, so the run can be replayed). */
export function freshSeed(): number {
  return Number(process.hrtime.bigint() % 4_294_967_296n);
}
