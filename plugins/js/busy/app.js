// `busy`: a scorer written in JavaScript, built with jco (componentize-js).
// It exports `scoring` (world `scorer`): `scoreBatch` takes the patrons the
// host projected for it and returns one score each. Field names are the
// WIT's in camelCase (`loans-365d` is `loans365d`); an absent option is
// `undefined`. To fail a batch, throw `{ tag: 'invalid-input', val: '...' }`.
// Call the host's imports inside the exports, never at the top level: the
// build runs the module's top level once, where there is no host.
import { config, today } from 'lectern:crm/host@0.2.0';

export const scoring = {
  scoreBatch(patrons) {
    const threshold = Number(config('busy-at') ?? '30');
    const day = today();
    return patrons.map((p) => {
      const loans = p.activity ? p.activity.loans365d : 0;
      const value = Math.min(100, (loans * 100) / (2 * threshold));
      const reasons = [`${loans} loans in the year to ${day.year}-${String(day.month).padStart(2, '0')}-${String(day.day).padStart(2, '0')}`];
      if (!p.activity) {
        reasons.push('no activity summary');
      }
      return {
        patron: p.id,
        value,
        segment: loans >= threshold ? 'busy' : 'quiet',
        reasons,
      };
    });
  },
};
