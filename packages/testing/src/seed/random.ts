import { ObjectId } from 'mongodb';

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence on every machine. */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, bound). */
  int(bound: number): number {
    return Math.floor(this.next() * bound);
  }

  /** Hex characters. */
  hex(length: number): string {
    let out = '';
    while (out.length < length) out += this.int(0x100000000).toString(16).padStart(8, '0');
    return out.slice(0, length);
  }

  /** An ObjectId at `seconds` (epoch) with seeded remaining bytes: deterministic, and ordered by time. */
  objectId(seconds: number): ObjectId {
    return new ObjectId(Math.floor(seconds).toString(16).padStart(8, '0') + this.hex(16));
  }
}

/**
 * Splits `total` into `parts` counts by a Zipf law of exponent `s` (rank r gets weight 1/r^s; 0 is
 * uniform), ranks assigned to parts in a seeded order. The counts sum to `total` exactly.
 */
export function zipfSplit(total: number, parts: number, s: number, random: SeededRandom): number[] {
  const weights = Array.from({ length: parts }, (_, rank) => 1 / (rank + 1) ** s);
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((weight) => Math.floor((total * weight) / sum));
  let left = total - counts.reduce((a, b) => a + b, 0);
  for (let rank = 0; left > 0; rank = (rank + 1) % parts, left -= 1) counts[rank] = (counts[rank] ?? 0) + 1;
  // Shuffle which part gets which rank (Fisher-Yates, seeded).
  for (let index = counts.length - 1; index > 0; index -= 1) {
    const other = random.int(index + 1);
    [counts[index], counts[other]] = [counts[other] as number, counts[index] as number];
  }
  return counts;
}

/** A sampler of indexes in [0, n) by a Zipf law of exponent `s` (index 0 most likely). */
export function zipfSampler(n: number, s: number, random: SeededRandom): () => number {
  const cumulative: number[] = [];
  let sum = 0;
  for (let rank = 0; rank < n; rank += 1) {
    sum += 1 / (rank + 1) ** s;
    cumulative.push(sum);
  }
  return () => {
    const target = random.next() * sum;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((cumulative[middle] as number) < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}
