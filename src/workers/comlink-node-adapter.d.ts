// comlink 4.4 ships its Node adapter without types under `nodenext` resolution.
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { MessagePort, Worker } from 'node:worker_threads';
  import type { Endpoint } from 'comlink';
  export default function nodeEndpoint(nep: MessagePort | Worker): Endpoint;
}
