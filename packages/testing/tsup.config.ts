import { packageBuild } from '../../tsup.shared.js';

export default packageBuild(
  {
    index: 'src/index.ts',
    'vitest/index': 'src/vitest/index.ts',
    'vitest/global-setup': 'src/vitest/global-setup.ts',
    'vitest/reporter': 'src/vitest/reporter.ts',
  },
  { external: ['vitest', 'vitest/node'] },
);
