/**
 * Logging: pino, pretty on a terminal, JSON lines otherwise, always on stderr so stdout carries only
 * results (`--json` output stays parseable).
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = process.env.DMAFARM_LOG ?? 'info'): Logger {
  if (process.stderr.isTTY) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ level }, pino.destination({ dest: 2, sync: true }));
}
