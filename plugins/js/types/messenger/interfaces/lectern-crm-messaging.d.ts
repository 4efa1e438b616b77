/// <reference path="./lectern-crm-types.d.ts" />
declare module 'lectern:crm/messaging@0.2.0' {
  /**
   * Composes the messages for one event: none, one, or one per channel.
   */
  export function compose(event: Event, recipient: Patron): Array<Message>;
  /**
   * Composes many at once. The result has one entry per request, in the
   * same order; one failing request does not fail the others.
   */
  export function composeBatch(requests: Array<Request>): Array<Result<Array<Message>, PluginError>>;
  export type Event = import('lectern:crm/types@0.2.0').Event;
  export type Patron = import('lectern:crm/types@0.2.0').Patron;
  export type Message = import('lectern:crm/types@0.2.0').Message;
  export type PluginError = import('lectern:crm/types@0.2.0').PluginError;
  /**
   * One event and the patron it concerns.
   */
  export interface Request {
    /**
     * What happened.
     */
    event: Event,
    /**
     * Who the notice goes to.
     */
    recipient: Patron,
  }
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
