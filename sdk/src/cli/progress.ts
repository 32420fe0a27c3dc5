/**
 * A progress line for long inputs (`dovetail pub -`): count and rate, redrawn in place on
 * stderr. Only on a terminal: when stderr is a file or a pipe it prints nothing, so logs and
 * scripts see the result line on stdout and nothing else.
 */

/** The part of `process.stderr` progress uses. */
export interface ProgressSink {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** Redraws at most this often: fast enough to look live, slow enough to cost nothing. */
export const PROGRESS_INTERVAL_MS = 250;

export interface Progress {
  /** Count `n` more items done. */
  add(n?: number): void;
  /** Print the final line (total and average rate) and stop redrawing. */
  stop(): void;
}

/**
 * @example
 * const progress = startProgress(process.stderr, "published");
 * send.then(() => progress.add());
 * progress.stop(); // "2500 published, 31250 msg/s" and a newline, on a terminal only
 */
export function startProgress(sink: ProgressSink, verb: string, now: () => number = () => performance.now()): Progress {
  if (!sink.isTTY) return { add() {}, stop() {} };
  const start = now();
  let count = 0;
  let lastCount = 0;
  let lastTime = start;
  let stopped = false;
  const draw = (line: string) => sink.write(`\r${line}\x1b[K`);
  const timer = setInterval(() => {
    const t = now();
    const rate = ((count - lastCount) * 1000) / Math.max(1, t - lastTime);
    draw(`${count} ${verb}, ${Math.round(rate)} msg/s`);
    lastCount = count;
    lastTime = t;
  }, PROGRESS_INTERVAL_MS);
  timer.unref();
  return {
    add(n = 1) {
      count += n;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      const seconds = Math.max(0.001, (now() - start) / 1000);
      draw(`${count} ${verb}, ${Math.round(count / seconds)} msg/s average over ${seconds.toFixed(1)} s`);
      sink.write("\n");
    },
  };
}
