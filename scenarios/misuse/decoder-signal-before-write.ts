// Misuse: a video decoder that signals its decode fence when the decode starts instead of when the picture
// is written. The display does everything right — it waits on the frame's fence — but the fence means
// nothing: the display scans out before the decode time is over and shows the previous picture
// (content-mismatch). Happens-before sees that the write the display reads comes after the signal it
// acquired (RAW), and the decoder's writes land over what the display already read (WAR).
// Fix: signal the fence only after the last write of the picture — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'decoder-signal-before-write',
  description:
    'video decoder signals its fence before decoding; the display waits and still reads undecoded ' +
    'pictures (RAW+WAR race, content-mismatch); fix: signal after the last write',
  frames: 8,
  devices: {
    dec0: {
      model: 'video-decoder',
      knobs: {
        width: 160,
        height: 120,
        fps: 30,
        buffers: 4,
        decodeNs: 8_000_000,
        jitterNs: 1_000_000,
        bugs: { signalBeforeWrite: true },
      },
    },
    disp0: { model: 'display', knobs: { refreshHz: 60 } },
  },
  links: [{ from: 'dec0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['content-mismatch', 'dmabuf-hazard-raw', 'dmabuf-hazard-war'] },
});
