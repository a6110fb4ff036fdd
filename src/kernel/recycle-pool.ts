/**
 * What a finished kernel (or run) leaves for the next one on this thread: shared memories, caches,
 * detector state, kept so that a sweep of thousands of runs does not allocate, zero and fault them in
 * per run.
 *
 * Contract:
 * - Thread-local (a module instance per isolate); the giver guarantees nothing touches an item again.
 * - Bounded: at most `itemsMax` items; giving one more drops the oldest (the newest kinds are the
 *   likeliest to be asked for next). The taker makes an item as good as new before using it.
 */
export class RecyclePool<T> {
  private readonly items: T[] = [];

  constructor(readonly itemsMax: number) {}

  /** The first kept item `fits` accepts, removed from the pool; undefined when none does. */
  take(fits: (item: T) => boolean): T | undefined {
    const i = this.items.findIndex(fits);
    return i < 0 ? undefined : this.items.splice(i, 1)[0];
  }

  give(item: T): void {
    if (this.items.length >= this.itemsMax) this.items.shift();
    this.items.push(item);
  }
}
