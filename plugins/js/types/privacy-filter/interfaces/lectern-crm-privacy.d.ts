/// <reference path="./lectern-crm-types.d.ts" />
declare module 'lectern:crm/privacy@0.2.0' {
  /**
   * The policy for an access context.
   */
  export function policyFor(context: AccessContext): Policy;
  /**
   * Rules for one record, called only when `policy-for` asked for it. The
   * record arrives as `policy-for` already filtered it. A returned rule may
   * only tighten the policy: a field the policy keeps may take any action,
   * any other field may only stay as it is or become `drop`. The host
   * rejects a refinement that widens a field.
   */
  export function refine(context: AccessContext, patron: Patron): Array<FieldRule>;
  export type AccessContext = import('lectern:crm/types@0.2.0').AccessContext;
  export type Patron = import('lectern:crm/types@0.2.0').Patron;
  export type Policy = import('lectern:crm/types@0.2.0').Policy;
  export type FieldRule = import('lectern:crm/types@0.2.0').FieldRule;
  export type PluginError = import('lectern:crm/types@0.2.0').PluginError;
}
