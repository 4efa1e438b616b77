/// <reference path="./lectern-crm-types.d.ts" />
declare module 'lectern:crm/forecasting@0.2.0' {
  /**
   * Forecasts `horizon` months after each series. The result has one
   * entry per series, in the same order; one failing series does not
   * fail the others. A horizon the forecaster cannot serve fails every
   * series with `invalid-input`.
   */
  export function forecastBatch(series: Array<Series>, horizon: number): Array<Result<Forecast, PluginError>>;
  export type PluginError = import('lectern:crm/types@0.2.0').PluginError;
  /**
   * A calendar month.
   */
  export interface Month {
    /**
     * The year, for example 2026.
     */
    year: number,
    /**
     * The month, 1 to 12.
     */
    month: number,
  }
  /**
   * Demand per month for one subject in one group of readers.
   */
  export interface Series {
    /**
     * The subject, such as an LC class (`QA76`).
     */
    subject: string,
    /**
     * The group, such as `all` or `department=chemistry`.
     */
    group: string,
    /**
     * The month of the first value.
     */
    start: Month,
    /**
     * Demand per month from `start`, oldest first, one value per
     * consecutive month; `none` where the host hid the month (too few
     * readers). Values are never negative.
     */
    values: Array<number | undefined>,
  }
  /**
   * A forecast for the months after a series' last.
   */
  export interface Forecast {
    /**
     * One value per month ahead, `horizon` of them, the month after the
     * series' last first.
     */
    values: Float64Array,
    /**
     * The interval's lower bound per month, as many as `values`.
     */
    low: Float64Array,
    /**
     * The interval's upper bound per month, as many as `values`.
     */
    high: Float64Array,
    /**
     * The interval's nominal coverage, such as 0.8.
     */
    level: number,
    /**
     * Why, in plain words a librarian can read.
     */
    reasons: Array<string>,
  }
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
