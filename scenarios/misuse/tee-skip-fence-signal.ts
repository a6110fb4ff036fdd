// Misuse: a TEE whose completion of key 1 never arrives: the fence it published as WRITE in the key
// buffer's resv is never signalled. Nobody waits on it here, so nothing hangs; the runtime finds the fence
// still pending when the device finishes and reports fence-never-signalled (the pending fence is then
// completed with -ECANCELED). Anyone who waited on that buffer's resv would have hung.
// Fix: signal every fence (with an error if the secure world failed the request) — fixed/ twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'tee-skip-fence-signal',
  description: 'TEE never signals key 1 write fence (fence-never-signalled); fix: signal every fence',
  devices: {
    tee0: { model: 'tee', knobs: { keys: 4, keyBytes: 4096, bugs: { skipFenceSignal: 1 } } },
  },
  expect: { findings: ['fence-never-signalled'] },
});
