// Node 20 registers tsx's loader on the main thread only, so a worker cannot start from a .ts file.
// This plain-JS entry registers it inside the worker, then imports the module named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
