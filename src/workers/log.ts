/**
 * Logging: pino, pretty on a terminal, JSON lines otherwise, always on stderr so stdout carries only
 * results (`--json` output stays parseable).
 *
 * Every thread writes through its own *synchronous* destination: the kernel thread one, each device worker
 * one. Synchronous writes of whole lines never interleave with another thread's (measured on this
 * platform: per-thread async transports corrupted a few lines in 200k, per-thread sync destinations none),
 * and nothing is lost when a worker is terminated, because nothing is buffered.
 */
import { pino } from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

export function logLevel(): string {
  return process.env.DMAFARM_LOG ?? 'info';
}

/** A logger for this thread. `prettyOutput` defaults to "stderr is a terminal". */
export function createLogger(level = logLevel(), prettyOutput = process.stderr.isTTY === true): Logger {
  const stream = prettyOutput
    ? pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' })
    : pino.destination({ dest: 2, sync: true });
  return pino({ level }, stream);
}
