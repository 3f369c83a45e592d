import { packageBuild } from '../../tsup.shared.js';

// A command line: ESM only, with a shebang on the bin entry.
export default packageBuild({ index: 'src/index.ts', bin: 'src/bin.ts' }, { format: ['esm'] });
