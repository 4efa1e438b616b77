/// <reference path="./lectern-crm-types.d.ts" />
declare module 'lectern:crm/host@0.2.0' {
  /**
   * Writes one line to the host's log, tagged with the plugin's id. The host
   * caps the size of each line and the total per call, and says how much it
   * dropped.
   */
  export function log(level: LogLevel, message: string): void;
  /**
   * The value of one configuration key: the library's setting if it has
   * one, else the default from the plugin's manifest, else `none`.
   */
  export function config(key: string): string | undefined;
  /**
   * The host's "today". Scoring as of a date uses this, so that a run is
   * reproducible; never read the clock for it.
   */
  export function today(): Date;
  export type Date = import('lectern:crm/types@0.2.0').Date;
  /**
   * How important a log line is.
   * # Variants
   * 
   * ## `"debug"`
   * 
   * Detail for the plugin's author.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something the library should look at.
   * ## `"error"`
   * 
   * Something failed.
   */
  export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
}
