/** The fence kind the benchmarks use: names only, like st-dma-fence.c's mock ops. */
import { registerFenceOps } from '../kernel/dma-fence.js';

export const mockBenchOps = registerFenceOps('bench', {
  getDriverName: () => 'bench',
  getTimelineName: () => 'bench',
});
