/// <reference path="./interfaces/lectern-crm-forecasting.d.ts" />
/// <reference path="./interfaces/lectern-crm-host.d.ts" />
/// <reference path="./interfaces/lectern-crm-types.d.ts" />
declare module 'lectern:crm/forecaster@0.2.0' {
  export type * as LecternCrmHost020 from 'lectern:crm/host@0.2.0'; // import lectern:crm/host@0.2.0
  export type * as LecternCrmTypes020 from 'lectern:crm/types@0.2.0'; // import lectern:crm/types@0.2.0
  export * as forecasting from 'lectern:crm/forecasting@0.2.0'; // export lectern:crm/forecasting@0.2.0
}
