import { SingleBar } from 'cli-progress';

/** One progress display: a bar with rate and ETA on a terminal, plain lines otherwise. */
export interface Progress {
  /** `done` of `total` (when known), with a short note (the current tenant, step). */
  update(done: number, total: number | undefined, note?: string): void;
  stop(): void;
}

/** Where a command writes: results to stdout (one JSON document with `--json`), progress and notes to stderr. */
export class Output {
  readonly json: boolean;
  readonly #stdout: NodeJS.WriteStream;
  readonly #stderr: NodeJS.WriteStream;

  constructor(options: { json: boolean; stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream }) {
    this.json = options.json;
    this.#stdout = options.stdout ?? process.stdout;
    this.#stderr = options.stderr ?? process.stderr;
  }

  /** The command's result: JSON with `--json`, else `human()`'s lines. */
  result(value: unknown, human: () => string): void {
    this.#stdout.write(this.json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
  }

  /** A note for people (stderr, so `--json` output stays parseable). */
  note(message: string): void {
    this.#stderr.write(`${message}\n`);
  }

  /** A progress display for a long job. */
  progress(label: string): Progress {
    if (this.#stderr.isTTY && !this.json) return new BarProgress(label, this.#stderr);
    return new LineProgress(label, this.#stderr);
  }
}

class BarProgress implements Progress {
  readonly #bar: SingleBar;
  #started = false;

  constructor(label: string, stream: NodeJS.WriteStream) {
    this.#bar = new SingleBar({
      stream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} | {speed}/s | ETA {eta_formatted} | {note}`,
      etaBuffer: 50,
      hideCursor: true,
      clearOnComplete: false,
    });
  }

  update(done: number, total: number | undefined, note = ''): void {
    const started = this.#started;
    if (!started) {
      this.#bar.start(total ?? done, done, { note, speed: '0' });
      this.#started = true;
      this.#startedAt = Date.now();
      this.#startedAtValue = done;
      return;
    }
    if (total !== undefined) this.#bar.setTotal(total);
    const seconds = (Date.now() - this.#startedAt) / 1000;
    const speed = seconds > 0 ? Math.round((done - this.#startedAtValue) / seconds) : 0;
    this.#bar.update(done, { note, speed: String(speed) });
  }

  #startedAt = 0;
  #startedAtValue = 0;

  stop(): void {
    if (this.#started) this.#bar.stop();
  }
}

/** Plain lines: at most one a second (and the last), each with rate and ETA. */
class LineProgress implements Progress {
  readonly #label: string;
  readonly #stream: NodeJS.WriteStream;
  readonly #started = Date.now();
  #first: number | undefined;
  #lastLine = 0;
  #last: { done: number; total: number | undefined; note: string } | undefined;
  #printed: string | undefined;

  constructor(label: string, stream: NodeJS.WriteStream) {
    this.#label = label;
    this.#stream = stream;
  }

  update(done: number, total: number | undefined, note = ''): void {
    this.#first ??= done;
    this.#last = { done, total, note };
    const now = Date.now();
    if (now - this.#lastLine < 1000 && this.#lastLine !== 0) return;
    this.#lastLine = now;
    this.#print();
  }

  #print(): void {
    if (!this.#last) return;
    const { done, total, note } = this.#last;
    const seconds = (Date.now() - this.#started) / 1000;
    const rate = seconds > 0 ? (done - (this.#first ?? 0)) / seconds : 0;
    const eta = total !== undefined && rate > 0 ? `, ETA ${Math.max(0, Math.round((total - done) / rate))} s` : '';
    const line = `${this.#label}: ${done}${total !== undefined ? `/${total}` : ''} (${Math.round(rate)}/s${eta})${note ? ` ${note}` : ''}`;
    if (line === this.#printed) return;
    this.#printed = line;
    this.#stream.write(`${line}\n`);
  }

  stop(): void {
    this.#print();
  }
}
