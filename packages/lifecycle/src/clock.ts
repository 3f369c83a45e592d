/** The clock every time rule of the lifecycle reads (retention cutoffs, grace periods, hold times). */
export type Clock = () => Date;

/** The wall clock. */
export const systemClock: Clock = () => new Date();

/** A clock that only moves when told to: tests run a month of retention without waiting. */
export interface ManualClock {
  /** The current time (a new Date each call). */
  (): Date;
  /** Sets the time. */
  set(to: Date): void;
  /** Moves the time forward by `ms` milliseconds. */
  advance(ms: number): void;
}

/** A {@link ManualClock} starting at `start`. */
export function manualClock(start: Date): ManualClock {
  let now = start.getTime();
  const clock = (() => new Date(now)) as ManualClock;
  clock.set = (to) => {
    now = to.getTime();
  };
  clock.advance = (ms) => {
    now += ms;
  };
  return clock;
}

/** Milliseconds in a day. */
export const DAY_MS = 86_400_000;
