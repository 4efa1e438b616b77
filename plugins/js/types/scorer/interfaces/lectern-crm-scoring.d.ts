/// <reference path="./lectern-crm-types.d.ts" />
declare module 'lectern:crm/scoring@0.2.0' {
  /**
   * Scores a batch of patrons. The result has one score per patron, in the
   * same order.
   */
  export function scoreBatch(patrons: Array<Patron>): Array<Score>;
  export type Patron = import('lectern:crm/types@0.2.0').Patron;
  export type PluginError = import('lectern:crm/types@0.2.0').PluginError;
  /**
   * The score of one patron.
   */
  export interface Score {
    /**
     * The patron's token, as it came in `patron.id`.
     */
    patron: string,
    /**
     * The score, from 0 to 100.
     */
    value: number,
    /**
     * The segment the patron falls in, such as `key-reader` or `lapsing`.
     */
    segment: string,
    /**
     * Why, in plain words a librarian can read.
     */
    reasons: Array<string>,
  }
}
