/**
 * Script: a device that runs a list of steps, one `DeviceContext` call each — for minimal examples of a
 * synchronisation bug (a few lines instead of a model), and for users' regression tests of their own
 * lock and fence protocols. Steps name buffers and fences with strings local to the device; buffers and
 * fences reach other devices only over links, as with every model.
 *
 * Knobs: `steps` (the correct protocol) and `bugs.steps` (the buggy one, run instead when given), so a
 * scenario's fixed twin (`fixedTwin`, which drops `bugs`) runs `steps`.
 *
 * Steps (`op`):
 * - `allocate {buf, sizeBytes?, heap?}`: allocate, attach and map; `recv {port, buf, fence?, atEnd?}`: the
 *   next frame on a port, its buffer (attached and mapped) named `buf`, its fence `fence`; at the end of
 *   the stream the script ends there, or with `atEnd: 'continue'` goes on to its next step (then `buf`
 *   must already name a buffer, which it keeps, and `fence` is not allowed): a device that waits for a
 *   hand-back its peer may never send. `send {port, buf, fence?}`: a frame on a port (the fence reference
 *   goes with it, as on every link); `close {port}`.
 * - `write {buf}` / `read {buf}`: fill / checksum the whole buffer by DMA.
 * - `fence {fence}`: a new fence on the device's timeline; `signal {fence, error?}`; `wait {fence,
 *   timeoutNs?, orElse?}`: with `orElse: 'stop'` a wait that timed out or found an error is checked, and
 *   the device stops there, failing its own pending fences with the error (-ETIME for a timeout) and
 *   closing its outputs — what a driver does with a failed dependency; without it the result is ignored.
 *   `waitResv {buf, usage, timeoutNs?, orElse?}` likewise (a timeout only: implicit fences' errors are not the waiter's to see).
 * - `addCallback {fence, cb}`: `dma_fence_add_callback`, its return (0 or -ENOENT) recorded;
 *   `waitCallback {cb, onEnoent?}`: until the callback ran — with `onEnoent: 'proceed'` a registration
 *   refused with -ENOENT counts as done (the fix), without it the device waits for a callback that never
 *   comes (fence-callback-enoent-ignored).
 * - `addFence {buf, fence, usage}` (lock, reserve, add, unlock); `acquireInit {ctx}`, `lock {buf, ctx?}`,
 *   `lockSlow {buf, ctx}`, `unlock {buf}`, `acquireDone {ctx}`, `acquireFini {ctx}`, `reserve {buf, n}`,
 *   `addFenceLocked {buf, fence, usage}`; a `lock` that returns -EDEADLK is not retried (the example
 *   decides what comes next).
 * - `beginSignalling` / `endSignalling`; `busy {ns}`.
 * An unknown buffer, fence or context name is a bad scenario (a ZodError at load names the step).
 */
import { z } from 'zod';
import {
  DMA_RESV_USAGE_BOOKKEEP,
  DMA_RESV_USAGE_KERNEL,
  DMA_RESV_USAGE_READ,
  DMA_RESV_USAGE_WRITE,
  type DmaResvUsage,
} from '../kernel/dma-resv.js';
import { ENOENT, ETIME } from '../kernel/errno.js';
import {
  type AcquireCtx,
  type BufferRef,
  type DeviceResult,
  defineDevice,
  type FenceCallback,
  type Mapping,
} from './device.js';

/** Steps one script may have. */
export const SCRIPT_STEPS_MAX = 256;

const name = z.string().min(1).max(32);
const usage = z.enum(['kernel', 'write', 'read', 'bookkeep']);
const USAGES: Record<z.infer<typeof usage>, DmaResvUsage> = {
  kernel: DMA_RESV_USAGE_KERNEL,
  write: DMA_RESV_USAGE_WRITE,
  read: DMA_RESV_USAGE_READ,
  bookkeep: DMA_RESV_USAGE_BOOKKEEP,
};

const step = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('allocate'),
      buf: name,
      sizeBytes: z
        .number()
        .int()
        .positive()
        .max(1 << 26)
        .default(4096),
      heap: z.string().default('system'),
    })
    .strict(),
  z
    .object({
      op: z.literal('recv'),
      port: name,
      buf: name,
      fence: name.optional(),
      atEnd: z.literal('continue').optional(),
    })
    .strict()
    .refine((s) => s.atEnd === undefined || s.fence === undefined, {
      message: "a recv with atEnd: 'continue' names no fence (at the end there is none)",
      path: ['fence'],
    }),
  z.object({ op: z.literal('send'), port: name, buf: name, fence: name.optional() }).strict(),
  z.object({ op: z.literal('close'), port: name }).strict(),
  z.object({ op: z.literal('write'), buf: name }).strict(),
  z.object({ op: z.literal('read'), buf: name }).strict(),
  z.object({ op: z.literal('fence'), fence: name }).strict(),
  z.object({ op: z.literal('signal'), fence: name, error: z.number().int().min(-4095).max(-1).optional() }).strict(),
  z
    .object({
      op: z.literal('wait'),
      fence: name,
      timeoutNs: z.number().int().min(0).optional(),
      orElse: z.literal('stop').optional(),
    })
    .strict(),
  z
    .object({
      op: z.literal('waitResv'),
      buf: name,
      usage,
      timeoutNs: z.number().int().min(0).optional(),
      orElse: z.literal('stop').optional(),
    })
    .strict(),
  z.object({ op: z.literal('addFence'), buf: name, fence: name, usage }).strict(),
  z.object({ op: z.literal('addCallback'), fence: name, cb: name }).strict(),
  /** `onEnoent: 'proceed'`: a registration refused with -ENOENT is taken as done (the fix), not waited for. */
  z.object({ op: z.literal('waitCallback'), cb: name, onEnoent: z.literal('proceed').optional() }).strict(),
  z.object({ op: z.literal('acquireInit'), ctx: name }).strict(),
  z.object({ op: z.literal('lock'), buf: name, ctx: name.optional() }).strict(),
  z.object({ op: z.literal('lockSlow'), buf: name, ctx: name }).strict(),
  z.object({ op: z.literal('unlock'), buf: name }).strict(),
  z.object({ op: z.literal('acquireDone'), ctx: name }).strict(),
  z.object({ op: z.literal('acquireFini'), ctx: name }).strict(),
  z.object({ op: z.literal('reserve'), buf: name, n: z.number().int().min(1).max(64) }).strict(),
  z.object({ op: z.literal('addFenceLocked'), buf: name, fence: name, usage }).strict(),
  z.object({ op: z.literal('beginSignalling') }).strict(),
  z.object({ op: z.literal('endSignalling') }).strict(),
  z
    .object({
      op: z.literal('busy'),
      ns: z.number().int().min(0).max(60_000_000_000),
    })
    .strict(),
]);
export type ScriptStep = z.infer<typeof step>;

const steps = z.array(step).max(SCRIPT_STEPS_MAX);

/** Every name a step uses is introduced by an earlier step (the ports by the scenario's links). */
function checkNames(list: ScriptStep[], ctx: z.RefinementCtx, path: (string | number)[]): void {
  const bufs = new Set<string>();
  const fences = new Set<string>();
  const tickets = new Set<string>();
  const callbacks = new Set<string>();
  list.forEach((s, i) => {
    const need = (set: Set<string>, key: 'buf' | 'fence' | 'ctx' | 'cb', what: string) => {
      const v = (s as Record<string, unknown>)[key];
      if (typeof v === 'string' && !set.has(v)) {
        ctx.addIssue({ code: 'custom', path: [...path, i, key], message: `no ${what} '${v}' before this step` });
      }
    };
    switch (s.op) {
      case 'allocate':
        bufs.add(s.buf);
        break;
      case 'recv':
        // At the end of the stream a continuing recv binds nothing: its buffer must exist already.
        if (s.atEnd === 'continue') need(bufs, 'buf', 'buffer');
        bufs.add(s.buf);
        if (s.fence !== undefined) fences.add(s.fence);
        break;
      case 'fence':
        fences.add(s.fence);
        break;
      case 'acquireInit':
        tickets.add(s.ctx);
        break;
      case 'addCallback':
        need(fences, 'fence', 'fence');
        callbacks.add(s.cb);
        break;
      case 'waitCallback':
        need(callbacks, 'cb', 'callback');
        break;
      case 'send':
        need(bufs, 'buf', 'buffer');
        need(fences, 'fence', 'fence');
        break;
      case 'signal':
      case 'wait':
        need(fences, 'fence', 'fence');
        break;
      case 'addFence':
      case 'addFenceLocked':
        need(bufs, 'buf', 'buffer');
        need(fences, 'fence', 'fence');
        break;
      case 'lock':
      case 'lockSlow':
        need(bufs, 'buf', 'buffer');
        need(tickets, 'ctx', 'acquire context');
        break;
      case 'acquireDone':
      case 'acquireFini':
        need(tickets, 'ctx', 'acquire context');
        break;
      case 'write':
      case 'read':
      case 'waitResv':
      case 'unlock':
      case 'reserve':
        need(bufs, 'buf', 'buffer');
        break;
      default:
        break;
    }
  });
}

export const scriptKnobs = z
  .object({
    inputs: z.array(name).max(8).default([]),
    outputs: z.array(name).max(8).default([]),
    steps,
    bugs: z.object({ steps }).strict().optional(),
  })
  .strict()
  .superRefine((k, ctx) => {
    checkNames(k.steps, ctx, ['steps']);
    if (k.bugs !== undefined) checkNames(k.bugs.steps, ctx, ['bugs', 'steps']);
  });
export type ScriptKnobs = z.infer<typeof scriptKnobs>;

export const script = defineDevice<ScriptKnobs>({
  name: 'script',
  parseKnobs: (raw) => scriptKnobs.parse(raw ?? {}),
  inputs: (k) => k.inputs,
  outputs: (k) => k.outputs,
  async run(ctx, k): Promise<DeviceResult> {
    const bufs = new Map<string, { buf: BufferRef; map: Mapping }>();
    const fences = new Map<string, number>();
    const tickets = new Map<string, AcquireCtx>();
    const callbacks = new Map<string, FenceCallback>();
    const own: number[] = [];
    const sections: number[] = [];
    const results: number[] = [];
    let frames = 0;
    // Names were checked at load: a miss here is a bug in this file.
    const b = (n: string) => bufs.get(n) as { buf: BufferRef; map: Mapping };
    const f = (n: string) => fences.get(n) as number;
    const t = (n: string) => tickets.get(n) as AcquireCtx;
    const mapped = async (buf: BufferRef) => ({ buf, map: await ctx.map(await ctx.attach(buf)) });
    /** Its consumers see the end of the stream, however the script ends. */
    const closeOutputs = async (): Promise<void> => {
      for (const p of k.outputs) await ctx.close(p);
    };
    /** A failed dependency: fail the device's own pending fences with it, and end its streams. */
    const stop = async (error: number): Promise<DeviceResult> => {
      for (const mine of own) if (ctx.status(mine) === 0) await ctx.signal(mine, error);
      await closeOutputs();
      return { frames, results, stopped: error };
    };
    for (const s of k.bugs?.steps ?? k.steps) {
      switch (s.op) {
        case 'allocate':
          bufs.set(s.buf, await mapped(await ctx.allocate(s.heap, s.sizeBytes)));
          break;
        case 'recv': {
          const frame = await ctx.recv(s.port);
          if (frame === null && s.atEnd === 'continue') break;
          if (frame === null) {
            await closeOutputs();
            return { frames, results };
          }
          frames++;
          bufs.set(s.buf, bufs.get(s.buf)?.buf.id === frame.buffer.id ? b(s.buf) : await mapped(frame.buffer));
          if (s.fence !== undefined) fences.set(s.fence, frame.fence);
          break;
        }
        case 'send':
          await ctx.send(s.port, {
            seq: frames++,
            buffer: b(s.buf).buf,
            fence: s.fence === undefined ? 0 : f(s.fence),
            flags: 0,
          });
          break;
        case 'close':
          await ctx.close(s.port);
          break;
        case 'write': {
          const { map } = b(s.buf);
          await ctx.fill(map, 0, map.sizeBytes, frames & 0xff);
          break;
        }
        case 'read': {
          const { map } = b(s.buf);
          results.push(await ctx.checksum(map, 0, map.sizeBytes));
          break;
        }
        case 'fence': {
          const fence = await ctx.createFence();
          fences.set(s.fence, fence);
          own.push(fence);
          break;
        }
        case 'signal':
          results.push(await ctx.signal(f(s.fence), s.error));
          break;
        case 'wait': {
          const r = await ctx.wait(f(s.fence), s.timeoutNs);
          results.push(r);
          if (s.orElse === 'stop') {
            const st = r > 0 ? ctx.status(f(s.fence)) : -ETIME;
            if (st < 0) return stop(st);
          }
          break;
        }
        case 'waitResv': {
          const r = await ctx.waitResv(b(s.buf).buf, USAGES[s.usage], s.timeoutNs);
          results.push(r);
          if (s.orElse === 'stop' && r <= 0) return stop(-ETIME);
          break;
        }
        case 'addFence':
          results.push(await ctx.addFence(b(s.buf).buf, f(s.fence), USAGES[s.usage]));
          break;
        case 'addCallback': {
          const cb = await ctx.addCallback(f(s.fence));
          callbacks.set(s.cb, cb);
          results.push(cb.ret);
          break;
        }
        case 'waitCallback': {
          const cb = callbacks.get(s.cb) as FenceCallback;
          if (cb.ret === -ENOENT && s.onEnoent === 'proceed') break;
          results.push(await ctx.waitCallback(cb));
          break;
        }
        case 'acquireInit':
          tickets.set(s.ctx, ctx.acquireInit());
          break;
        case 'lock':
          results.push(await ctx.lock(b(s.buf).buf, s.ctx === undefined ? null : t(s.ctx)));
          break;
        case 'lockSlow':
          results.push(await ctx.lockSlow(b(s.buf).buf, t(s.ctx)));
          break;
        case 'unlock':
          await ctx.unlock(b(s.buf).buf);
          break;
        case 'acquireDone':
          ctx.acquireDone(t(s.ctx));
          break;
        case 'acquireFini':
          ctx.acquireFini(t(s.ctx));
          break;
        case 'reserve':
          results.push(await ctx.reserveFences(b(s.buf).buf, s.n));
          break;
        case 'addFenceLocked':
          results.push(await ctx.addFenceLocked(b(s.buf).buf, f(s.fence), USAGES[s.usage]));
          break;
        case 'beginSignalling':
          sections.push(ctx.beginSignalling());
          break;
        case 'endSignalling':
          ctx.endSignalling(sections.pop() ?? 0);
          break;
        case 'busy':
          await ctx.busy(s.ns);
          break;
      }
    }
    await closeOutputs();
    return { frames, results };
  },
});
