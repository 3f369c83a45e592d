export { SeededRandom, zipfSampler, zipfSplit } from './random.js';
export { type SeedOptions, type SeedProgress, type SeedResult, seed } from './seed.js';
