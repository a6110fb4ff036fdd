// Misuse: a display that scans out with the CPU (a software compositor) and relies on DMA_BUF_IOCTL_SYNC
// START instead of the frame's fence. START waits only for the fences in the buffer's dma_resv
// (dma_buf_begin_cpu_access), and this camera synchronises explicitly: its write fence travels with the
// frame and is never added to the resv. So START returns at once and the CPU read is not ordered after
// the camera's write. The camera signals before it sends, so every frame happens to be complete; the race
// is reported anyway, as cpu-sync-not-fence: SYNC "only provides cache coherency".
// Fix: wait on the frame's fence before SYNC START — fixed/ has the twin.
import { defineScenario } from '../../src/workers/scenario.js';

export default defineScenario({
  name: 'display-cpu-sync-not-fence',
  description:
    'explicit-sync camera → CPU scan-out that relies on SYNC START instead of the frame fence ' +
    '(cpu-sync-not-fence); fix: wait on the frame fence, then SYNC START',
  frames: 8,
  devices: {
    cam0: { model: 'camera', knobs: { width: 160, height: 120, fps: 30, buffers: 4, resvUsage: 'none' } },
    disp0: { model: 'display', knobs: { refreshHz: 60, cpuScanout: true, bugs: { ignoreFrameFence: true } } },
  },
  links: [{ from: 'cam0.out', to: 'disp0.in', capacity: 2 }],
  expect: { findings: ['cpu-sync-not-fence'] },
});
