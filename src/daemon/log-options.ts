/**
 * The daemon's log levels and formats, apart from the logger itself: the
 * command line offers them without loading winston.
 */

/** Levels, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto` picks `text` when stdout is a terminal and `json` otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
