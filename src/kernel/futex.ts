/**
 * The one mutex every shared table uses: Drepper's three-state futex mutex ("Futexes Are Tricky", mutex 2)
 * on an Int32 word. 0 = free, 1 = held, 2 = held and someone may be sleeping.
 *
 * Lock: CAS 0→1 takes it uncontended (one atomic). Otherwise announce a sleeper by exchanging in 2 and
 * sleep while it reads 2; each wake exchanges 2 in again, so the holder that releases knows to notify.
 * Unlock: subtract 1; if the word was 2 (sleepers possible), store 0 and wake one. A wake is never lost:
 * a sleeper only sleeps on the value 2, and only a release that saw 2 stores 0 — after which its notify
 * comes, or the sleeper's Atomics.wait finds the word no longer 2 and returns at once.
 *
 * Blocking with Atomics.wait is allowed on Node's main thread too; critical sections here are a few
 * atomic operations long, so the kernel thread never waits long.
 */
export function futexLock(words: Int32Array, index: number): void {
  let c = Atomics.compareExchange(words, index, 0, 1);
  if (c === 0) return;
  if (c !== 2) c = Atomics.exchange(words, index, 2);
  while (c !== 0) {
    Atomics.wait(words, index, 2);
    c = Atomics.exchange(words, index, 2);
  }
}

export function futexUnlock(words: Int32Array, index: number): void {
  if (Atomics.sub(words, index, 1) !== 1) {
    Atomics.store(words, index, 0);
    Atomics.notify(words, index, 1);
  }
}
