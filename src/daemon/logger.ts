/**
 * The daemon's logger (winston): one JSON object per line for journald and
 * log shippers, or readable lines on a terminal. Every line has a time, a
 * level and a message; details are extra fields.
 */
import winston from 'winston';
import type { LogFormat, LogLevel } from './log-options.js';

export { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './log-options.js';

/** What the daemon logs through: winston's logger (level methods take a message and fields). */
export type Logger = winston.Logger;

function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

/** Fields of a log entry besides level and message, in insertion order. */
function fieldsOf(info: winston.Logform.TransformableInfo): Array<[string, unknown]> {
  return Object.entries(info)
    .filter(([k]) => k !== 'level' && k !== 'message' && k !== 'time')
    .map(([k, v]) => [k, plain(v)]);
}

const timestamp = winston.format((info) => {
  info.time = new Date().toISOString();
  return info;
});

/** `{"time":…,"level":…,"msg":…,…fields}` on one line. */
const jsonLine = winston.format.printf((info) =>
  JSON.stringify({ time: info.time, level: info.level, msg: info.message, ...Object.fromEntries(fieldsOf(info)) }, (_k, v: unknown) => plain(v)),
);

function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v, (_k, x: unknown) => plain(x)) ?? 'undefined';
}

/** `TIME LEVEL message key=value …` for people. */
const textLine = winston.format.printf((info) => {
  const fields = fieldsOf(info)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${textValue(v)}`);
  return [String(info.time), info.level, String(info.message), ...fields].join(' ');
});

/**
 * Creates a logger writing to stdout. The caller owns it and should
 * {@link closeLogger} it before exiting.
 */
export function createLogger(opts: { level?: LogLevel; format?: LogFormat; isTTY?: boolean } = {}): Logger {
  const format = opts.format === 'auto' || opts.format === undefined ? ((opts.isTTY ?? process.stdout.isTTY) ? 'text' : 'json') : opts.format;
  const line =
    format === 'json'
      ? winston.format.combine(timestamp(), jsonLine)
      : winston.format.combine(
          timestamp(),
          ...(opts.isTTY ?? process.stdout.isTTY ? [winston.format.colorize({ level: true })] : []),
          textLine,
        );
  return winston.createLogger({
    level: opts.level ?? 'info',
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: line,
    transports: [new winston.transports.Console()],
  });
}

/** Ends the logger and resolves once what it was given is written (or after `timeoutMs`). */
export async function closeLogger(logger: Logger, timeoutMs = 2000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    logger.on('finish', () => {
      clearTimeout(timer);
      // The Console transport writes on the next ticks after 'finish'.
      setImmediate(resolve);
    });
    logger.end();
  });
}
