// `{{id}}`: tells readers that a hold is ready for pickup.
//
// Build: npm install && npm run build
// Test:  lectern plugin test .
//
// `compose` takes one event; `composeBatch` is the host's call, and gives
// one `{ tag: 'ok', val: messages }` or `{ tag: 'err', val: error }` per
// request, so that one failure does not fail the others.
import { config } from 'lectern:crm/host@0.2.0';

function compose(event, recipient) {
  if (event.kind.tag !== 'hold-ready') {
    // Not ours: another messenger composes it.
    return [];
  }
  const hold = event.kind.val;
  const library = config('library-name') ?? 'the library';
  const name = recipient.name ?? 'reader';
  const takesEmail = recipient.channels === undefined || recipient.channels.includes('email');
  const channel = recipient.email !== undefined && takesEmail ? 'email' : 'print';
  return [
    {
      channel,
      locale: 'en',
      subject: `Ready for pickup: ${hold.title}`,
      body: `Dear ${name},\n\n${hold.title} is waiting for you at ${hold.pickupBranch}.\n\n${library}`,
      dedupeKey: 'ready',
      sendAfter: undefined,
    },
  ];
}

export const messaging = {
  compose,
  composeBatch(requests) {
    return requests.map((r) => {
      try {
        return { tag: 'ok', val: compose(r.event, r.recipient) };
      } catch (e) {
        return { tag: 'err', val: e };
      }
    });
  },
};
