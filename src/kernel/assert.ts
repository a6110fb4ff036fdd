/**
 * Two grades of invariant (style.md §3.4):
 * - `assert`/`bugOn`: a broken invariant inside dmafarm itself. It throws `KernelBug`, which is never
 *   caught by the model: our bugs crash, loudly, with the invariant named.
 * - Misuse by a device, scenario or process is *data*: it goes through `Kernel.warn()` (a Finding on the
 *   `kernel:warn` channel) and the operation returns the kernel's errno. See kernel.ts.
 */
export class KernelBug extends Error {
  readonly code = 'DMAFARM_BUG';
  constructor(message: string) {
    super(`dmafarm internal invariant broken: ${message}`);
    this.name = 'KernelBug';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new KernelBug(message);
}

/** `BUG_ON(cond)`: reads like the kernel, crashes like the kernel. */
export function bugOn(condition: unknown, message: string): void {
  if (condition) throw new KernelBug(`BUG_ON: ${message}`);
}

export function assertNever(x: never, message: string): never {
  throw new KernelBug(`${message}: ${String(x)}`);
}
