// `{{id}}`: scoring sees use, the circulation desk sees who, nobody else
// sees anything. A field without a rule is dropped.
//
// Build: npm install && npm run build
// Test:  lectern plugin test .

export const privacy = {
  policyFor(context) {
    let rules = [];
    if (context.purpose === 'scoring') {
      rules = [['category', 'keep'], ['activity', 'keep']];
    } else if (
      context.purpose === 'staff-view' &&
      context.actor.tag === 'staff' &&
      context.actor.val === 'circulation-desk'
    ) {
      rules = [['card-number', 'keep'], ['name', 'keep'], ['email', 'mask']];
    }
    return {
      rules: rules.map(([field, action]) => ({ field, action })),
      refinePerRecord: false,
    };
  },
  refine(context, patron) {
    return [];
  },
};
