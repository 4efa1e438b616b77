/// <reference path="./interfaces/lectern-crm-host.d.ts" />
/// <reference path="./interfaces/lectern-crm-privacy.d.ts" />
/// <reference path="./interfaces/lectern-crm-types.d.ts" />
declare module 'lectern:crm/privacy-filter@0.2.0' {
  export type * as LecternCrmHost020 from 'lectern:crm/host@0.2.0'; // import lectern:crm/host@0.2.0
  export type * as LecternCrmTypes020 from 'lectern:crm/types@0.2.0'; // import lectern:crm/types@0.2.0
  export * as privacy from 'lectern:crm/privacy@0.2.0'; // export lectern:crm/privacy@0.2.0
}
