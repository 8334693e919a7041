// The allocator tuning lives in the runtime (src/process/malloc-tuning.ts), where `npm run bench` reaches it
// too; this path stays for test/e2e/cli/bin.test.ts, which imports it from here.

export { MALLOC_TUNABLES, tunedEnvironment, untunedEnvironment } from '../process/malloc-tuning.js';
