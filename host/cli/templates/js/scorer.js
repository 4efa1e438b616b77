// `{{id}}`: scores readers by how much they borrowed in the last year.
//
// Build: npm install && npm run build
// Test:  lectern plugin test .
//
// Field names are the WIT's in camelCase (`loans-365d` is `loans365d`); an
// absent option is `undefined`. To fail a batch, throw
// `{ tag: 'invalid-input', val: 'why' }`. Call the host's imports inside the
// exports: the build runs the module's top level once, with no host.
import { config } from 'lectern:crm/host@0.2.0';

export const scoring = {
  scoreBatch(patrons) {
    // The host checked the value against the manifest's schema.
    const busyAt = Number(config('busy-at') ?? '20');
    return patrons.map((p) => {
      const loans = p.activity ? p.activity.loans365d : 0;
      return {
        patron: p.id,
        value: Math.min(100, (loans * 100) / (2 * busyAt)),
        segment: loans >= busyAt ? 'busy' : 'quiet',
        reasons: [`${loans} loans in the last year`],
      };
    });
  },
};
