// A progress bar on stderr for long work (denoising, training), silent when stderr is not a terminal
// unless forced.

import cliProgress from 'cli-progress';

/** A progress bar: `update` with the work done so far, `stop` when finished. */
export interface Progress {
  /** Sets the work done so far (and extra fields shown beside the bar). */
  update(done: number, extra?: Record<string, string | number>): void;
  /** Ends the bar. */
  stop(): void;
}

/**
 * A progress bar on stderr (cli-progress) over `total` units of work; silent when `quiet` or when stderr is
 * not a terminal.
 */
export function progressBar(label: string, total: number, opts: { quiet?: boolean } = {}): Progress {
  if (opts.quiet) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {value}/{total} {percentage}% | ETA {eta_formatted} | {extra}`,
      stream: process.stderr,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 5000,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { extra: '' });
  return {
    update(done, extra) {
      const text = extra
        ? Object.entries(extra)
            .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toPrecision(4) : v}`)
            .join(' ')
        : '';
      bar.update(done, { extra: text });
    },
    stop() {
      bar.stop();
    },
  };
}
