/**
 * Finding and loading scenario modules: the built-in ones next to this package (compiled or TypeScript),
 * or a user's file (`.js`, or `.ts` through tsx). A module's default export may be a scenario already
 * built with `defineScenario`, or the plain object to build one from; either way it is validated here.
 */
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { defineScenario, type Scenario, ScenarioError, type ScenarioInput } from './scenario.js';

const here = import.meta.url;
const ext = here.endsWith('.ts') ? '.ts' : '.js';
/** src/workers → ../../scenarios (compiled: dist/src/workers → dist/scenarios). */
const builtinDir = fileURLToPath(new URL('../../scenarios/', here));

/** Import a module; TypeScript goes through tsx's tsImport, which copes with files outside an ESM package. */
async function importModule(file: string): Promise<{ default?: unknown }> {
  const url = pathToFileURL(file).href;
  if (!/\.[cm]?ts$/.test(file) || ext === '.ts') return (await import(url)) as { default?: unknown };
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as { default?: unknown };
}

/** Built-in scenario names (file names without extension), sorted. */
export async function builtinScenarioNames(): Promise<string[]> {
  if (!existsSync(builtinDir)) return [];
  return readdirSync(builtinDir)
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

/** Load a built-in scenario by name, or a scenario file by path. Throws ScenarioError for bad input. */
export async function loadScenario(nameOrPath: string): Promise<Scenario> {
  const looksLikePath = /[\\/]/.test(nameOrPath) || /\.[cm]?[jt]s$/.test(nameOrPath);
  const file = looksLikePath
    ? isAbsolute(nameOrPath)
      ? nameOrPath
      : resolve(process.cwd(), nameOrPath)
    : `${builtinDir}${nameOrPath}${ext}`;
  if (!existsSync(file)) {
    const known = await builtinScenarioNames();
    throw new ScenarioError(nameOrPath, [
      looksLikePath ? `no such file: ${file}` : `no built-in scenario '${nameOrPath}' (known: ${known.join(', ')})`,
    ]);
  }
  let mod: { default?: unknown };
  try {
    mod = await importModule(file);
  } catch (e) {
    if (e instanceof ScenarioError) throw e;
    throw new ScenarioError(nameOrPath, [`cannot load: ${(e as Error).message}`]);
  }
  let exported = mod.default;
  // A TypeScript file loaded as CommonJS comes back as { default: { default: scenario } }.
  if (typeof exported === 'object' && exported !== null && 'default' in exported && !('name' in exported)) {
    exported = (exported as { default: unknown }).default;
  }
  if (typeof exported !== 'object' || exported === null) {
    throw new ScenarioError(nameOrPath, ['default export: expected a scenario (defineScenario({...}))']);
  }
  if ('parsedKnobs' in exported) return exported as Scenario;
  return defineScenario(exported as ScenarioInput, nameOrPath);
}
