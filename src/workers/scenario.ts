/**
 * Scenarios: pipelines of devices, declared as data and validated when loaded. A bad field is reported
 * with its path (`devices.cam0.knobs.fps: Number must be greater than 0`), and the CLI exits 2.
 *
 * A scenario module's default export is `defineScenario({...})`:
 *   devices  instance name → { model, knobs }; `model` is a built-in ('camera', 'display', ...) or a
 *            model object of your own (`defineDevice`) passed in `models`
 *   links    'producer.port' → 'consumer.port', each a bounded ring of frame descriptors
 *   frames   default frame count for producers (a producer's own `frames` knob wins; --frames beats both)
 *   expect   the findings the run must produce (rule ids); clean scenarios expect none
 */
import { z } from 'zod';
import { HB_THREADS_MAX } from '../detect/hb.js';
import { camera } from '../devices/camera.js';
import type { DeviceModel } from '../devices/device.js';
import { display } from '../devices/display.js';
import { gpu } from '../devices/gpu.js';
import { script } from '../devices/script.js';
import { tee } from '../devices/tee.js';
import { videoDecoder } from '../devices/video-decoder.js';
import { PROTECTED_USE_CASES } from '../kernel/heaps/tee-heap.js';
import { LINK_CAPACITY_MAX } from './link-ring.js';

/** Devices one scenario may have: one vector-clock slot each in the race detector. */
export const SCENARIO_DEVICES_MAX = HB_THREADS_MAX;

// biome-ignore lint/suspicious/noExplicitAny: models of any knob type live in one registry
export type AnyDeviceModel = DeviceModel<any>;

export const builtinModels: Readonly<Record<string, AnyDeviceModel>> = Object.freeze({
  camera,
  display,
  gpu,
  'video-decoder': videoDecoder,
  tee,
  script,
});

const endpoint = z.string().regex(/^[A-Za-z_][\w-]*\.[A-Za-z_][\w-]*$/, "must be 'device.port'");

export const scenarioSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
    description: z.string().default(''),
    frames: z.number().int().min(0).max(100_000).default(30),
    devices: z
      .record(
        z.string().regex(/^[A-Za-z_][\w-]*$/, 'a device name is a word'),
        z.object({ model: z.string(), knobs: z.record(z.string(), z.unknown()).default({}) }).strict(),
      )
      .refine((d) => Object.keys(d).length > 0, 'a scenario needs at least one device')
      .refine(
        (d) => Object.keys(d).length <= SCENARIO_DEVICES_MAX,
        `at most ${SCENARIO_DEVICES_MAX} devices (one vector-clock slot each in the race detector)`,
      ),
    links: z
      .array(
        z
          .object({ from: endpoint, to: endpoint, capacity: z.number().int().min(1).max(LINK_CAPACITY_MAX).default(2) })
          .strict(),
      )
      .default([]),
    kernel: z
      .object({
        systemBytes: z.number().int().positive().optional(),
        cmaBytes: z.number().int().min(0).optional(),
        carveoutBytes: z.number().int().min(0).optional(),
        /** Device-local memory behind the 'vram' heap (0: none); whole pages, one arena. */
        vramBytes: z
          .number()
          .int()
          .min(0)
          .max(1 << 30)
          .refine((n) => n % 4096 === 0, 'a whole number of 4096-byte pages')
          .optional(),
        /**
         * TEE protected heaps, `protected,<use case>` (tee-heap.ts): per use case, its pool's size and the
         * devices (names or models) its firewall admits (default: the use case's devices and the TEE).
         */
        protected: z
          .partialRecord(
            z.enum(PROTECTED_USE_CASES),
            z
              .object({
                bytes: z
                  .number()
                  .int()
                  .positive()
                  .max(1 << 30)
                  .refine((n) => n % 4096 === 0, 'a whole number of 4096-byte pages'),
                firewall: z.array(z.string().min(1)).max(SCENARIO_DEVICES_MAX).optional(),
              })
              .strict(),
          )
          .optional(),
        /** Fence-table slots (every live fence of the run); default SCENARIO_FENCES_DEFAULT. */
        fences: z
          .number()
          .int()
          .min(64)
          .max(1 << 20)
          .optional(),
        /** Reservation objects (one per live buffer); default SCENARIO_RESVS_DEFAULT. */
        resvs: z
          .number()
          .int()
          .min(16)
          .max(1 << 16)
          .optional(),
      })
      .strict()
      .default({}),
    expect: z
      .object({ findings: z.array(z.string()).default([]) })
      .strict()
      .default({ findings: [] }),
  })
  .strict();

/**
 * A scenario's kernel gets smaller shared tables than a facade kernel: pipelines hold tens of buffers
 * and hundreds of fences, and a sweep boots one kernel per run, so the tables' size is its boot cost.
 */
export const SCENARIO_FENCES_DEFAULT = 4096;
export const SCENARIO_RESVS_DEFAULT = 1024;

export type ScenarioInput = z.input<typeof scenarioSchema> & { models?: Record<string, AnyDeviceModel> };
export type Scenario = z.output<typeof scenarioSchema> & {
  models: Record<string, AnyDeviceModel>;
  /** Knobs parsed by each device's model. */
  parsedKnobs: Record<string, unknown>;
};

/** A scenario that failed validation: `issues` name the bad fields by path. */
export class ScenarioError extends Error {
  readonly issues: string[];
  constructor(source: string, issues: string[]) {
    super(`invalid scenario ${source}:\n  ${issues.join('\n  ')}`);
    this.name = 'ScenarioError';
    this.issues = issues;
  }
}

function zodIssues(e: z.ZodError, prefix: string): string[] {
  return e.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`);
}

/** Validate a scenario; throws ScenarioError naming every bad field. */
export function defineScenario(input: ScenarioInput, source = input?.name ?? '<scenario>'): Scenario {
  const { models: extra = {}, ...data } = (input ?? {}) as ScenarioInput;
  const parsed = scenarioSchema.safeParse(data);
  if (!parsed.success) throw new ScenarioError(source, zodIssues(parsed.error, ''));
  const s = parsed.data;
  const models: Record<string, AnyDeviceModel> = { ...builtinModels, ...extra };
  const issues: string[] = [];
  const parsedKnobs: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(s.devices)) {
    const model = models[d.model];
    if (model === undefined) {
      issues.push(`devices.${name}.model: unknown model '${d.model}' (known: ${Object.keys(models).join(', ')})`);
      continue;
    }
    try {
      parsedKnobs[name] = model.parseKnobs(d.knobs, { frames: s.frames });
    } catch (e) {
      if (e instanceof z.ZodError) issues.push(...zodIssues(e, `devices.${name}.knobs`));
      else issues.push(`devices.${name}.knobs: ${(e as Error).message}`);
    }
  }
  const used = new Set<string>();
  s.links.forEach((l, i) => {
    for (const [side, ep] of [
      ['from', l.from],
      ['to', l.to],
    ] as const) {
      const [dev, port] = ep.split('.') as [string, string];
      const d = s.devices[dev];
      const model = d && models[d.model];
      if (!model) {
        issues.push(`links.${i}.${side}: no device '${dev}'`);
        continue;
      }
      const knobs = parsedKnobs[dev];
      if (knobs === undefined) continue;
      const ports = side === 'from' ? model.outputs(knobs) : model.inputs(knobs);
      if (!ports.includes(port)) {
        issues.push(
          `links.${i}.${side}: ${dev} (${d.model}) has no ${side === 'from' ? 'output' : 'input'} '${port}' (has: ${ports.join(', ') || 'none'})`,
        );
      }
      if (used.has(ep)) issues.push(`links.${i}.${side}: port ${ep} is linked twice`);
      used.add(ep);
    }
  });
  // Every port a model declares is linked: a device's recv or send on a port with no link has nowhere to go.
  for (const [name, d] of Object.entries(s.devices)) {
    const model = models[d.model];
    const knobs = parsedKnobs[name];
    if (model === undefined || knobs === undefined) continue;
    for (const [kind, side, ports] of [
      ['input', 'to', model.inputs(knobs)],
      ['output', 'from', model.outputs(knobs)],
    ] as const) {
      for (const port of ports) {
        if (!used.has(`${name}.${port}`)) {
          issues.push(
            `devices.${name}: ${kind} '${port}' of ${d.model} is not linked (add a link with ${side}: '${name}.${port}')`,
          );
        }
      }
    }
  }
  // A producer with a pool of N buffers reuses frame k's buffer for frame k+N. The consumer protects a
  // frame it holds with a release (READ) fence, but only from when it receives it; while the frame is
  // queued on the link nothing protects it. Links now count room from acknowledged frames (link-ring.ts),
  // which alone would make C ≤ N − 1 safe; this rule keeps the older, stricter C ≤ N − 2 (one buffer of
  // slack for the consumer's hold-until-next-flip), so relaxing it is a deliberate change, not a side effect.
  s.links.forEach((l, i) => {
    const dev = l.from.split('.')[0] as string;
    const pool = (parsedKnobs[dev] as { buffers?: unknown } | undefined)?.buffers;
    if (typeof pool === 'number' && l.capacity > pool - 2) {
      issues.push(
        `links.${i}.capacity: ${l.capacity} lets ${dev} overwrite a frame still queued on the link; ` +
          `its pool has ${pool} buffers, so the link may hold at most ${Math.max(0, pool - 2)} ` +
          `(raise ${dev}'s buffers or shorten the link)`,
      );
    }
  });
  if (issues.length > 0) throw new ScenarioError(source, issues);
  return { ...s, models, parsedKnobs };
}

/**
 * The negative twin of a buggy example: the same scenario with every device's `bugs` knob removed (the
 * fix applied), expecting no findings. Deriving it keeps the twin from drifting from its buggy original.
 */
export function fixedTwin(s: Scenario, description: string): Scenario {
  const devices = Object.fromEntries(
    Object.entries(s.devices).map(([name, d]) => {
      const { bugs: _bugs, ...knobs } = d.knobs as Record<string, unknown>;
      return [name, { model: d.model, knobs }];
    }),
  );
  const { models, parsedKnobs: _parsed, ...input } = s;
  return defineScenario({
    ...input,
    name: `${s.name}-fixed`,
    description,
    devices,
    expect: { ...s.expect, findings: [] },
    models,
  });
}

/** The same scenario with another default frame count (`--frames`): every model re-parses its knobs. */
export function withFrames(s: Scenario, frames: number): Scenario {
  const parsedKnobs: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(s.devices)) {
    const model = s.models[d.model] as AnyDeviceModel;
    const { frames: _ignored, ...rest } = d.knobs as Record<string, unknown>;
    parsedKnobs[name] = model.parseKnobs(rest, { frames });
  }
  return { ...s, frames, parsedKnobs };
}
