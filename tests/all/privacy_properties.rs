//! The privacy invariant as a property: for random patrons, under both
//! bundled policies, for every purpose and every actor, no value the policy
//! withholds reaches an output or a plugin, and reading history never leaves
//! without consent. The personal values include the FOLIO samples' names,
//! emails and birth dates.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use lectern::{
    AccessContext, Action, Activity, Actor, Consents, Field, Patron, PrivacyFilter, Purpose,
};
use lectern_tests::{host, pipeline, plugin_copy, plugins, repo};
use proptest::prelude::*;

/// Every purpose a filter serves; `patron-export` is one patron's own
/// export, which no filter gives.
const PURPOSES: [Purpose; 5] = [
    Purpose::Scoring,
    Purpose::MessagingTransactional,
    Purpose::MessagingMarketing,
    Purpose::StaffView,
    Purpose::Analytics,
];

/// Names, emails and birth dates from the FOLIO samples.
fn folio_people() -> Vec<(String, String, String)> {
    let dir = repo().join("tests/fixtures/folio/users");
    let mut people = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().take(40) {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let p = &v["personal"];
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        people.push((
            format!("{} {}", s("firstName"), s("lastName")),
            s("email"),
            s("dateOfBirth"),
        ));
    }
    people
}

fn patron() -> impl Strategy<Value = Patron> {
    let people = folio_people();
    (
        0..people.len(),
        "[A-Z0-9]{6,12}",
        proptest::option::of("\\+[0-9]{8,12}"),
        proptest::option::of((1940i32..2015, 1u32..13, 2u32..28)),
        proptest::option::of(prop_oneof![
            "faculty",
            "graduate",
            "undergraduate",
            "public"
        ]),
        proptest::option::of((any::<bool>(), any::<bool>())),
        proptest::option::of((0u32..200, 0u32..40, proptest::option::of(0u32..900))),
        proptest::option::of(proptest::collection::btree_map(
            "[A-Z]{1,2}[0-9]{0,2}",
            1u32..30,
            0..5,
        )),
        any::<bool>(),
    )
        .prop_map(
            move |(who, card, phone, birth, category, consents, activity, interests, research)| {
                let (name, email, dob) = &people[who];
                let birth_date = birth
                    .map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
                    .or_else(|| dob.get(..10).and_then(|d| d.parse().ok()));
                Patron {
                    id: format!("P-{card}"),
                    card_number: Some(card),
                    name: Some(name.clone()),
                    email: Some(email.clone()).filter(|e| !e.is_empty()),
                    phone,
                    address: Some(vec!["1 College Road".into(), "Beijing 100871".into()]),
                    birth_date,
                    age_band: Some("25-34".into()),
                    category,
                    home_branch: Some("MAIN".into()),
                    enrolled_on: NaiveDate::from_ymd_opt(2019, 9, 3),
                    expires_on: NaiveDate::from_ymd_opt(2027, 6, 30),
                    attributes: research.then(|| {
                        BTreeMap::from([("research-project".to_string(), "NSFC-1".to_string())])
                    }),
                    consents: consents.map(|(r, m)| Consents {
                        reading_history: r,
                        marketing: m,
                    }),
                    locale: Some("zh-CN".into()),
                    channels: Some(vec![lectern::Channel::Email]),
                    segments: research.then(|| {
                        BTreeMap::from([("key-readers".to_string(), "key-reader".to_string())])
                    }),
                    activity: activity.map(|(l, h, d)| Activity {
                        loans_365d: l,
                        loans_90d: l / 4,
                        loans_30d: l / 12,
                        holds_365d: h,
                        days_since_last_activity: d,
                        ..Activity::default()
                    }),
                    interests,
                }
            },
        )
}

fn actors() -> Vec<Actor> {
    [
        "circulation-desk",
        "analyst",
        "administrator",
        "privacy-officer",
    ]
    .into_iter()
    .map(|r| Actor::Staff(r.into()))
    .chain([Actor::Plugin("testkit".into())])
    .collect()
}

fn text_of(p: &Patron, f: Field) -> Option<String> {
    match f {
        Field::CardNumber => p.card_number.clone(),
        Field::Name => p.name.clone(),
        Field::Email => p.email.clone(),
        Field::Phone => p.phone.clone(),
        Field::BirthDate => p.birth_date.map(|d| d.to_string()),
        _ => None,
    }
}

fn present(p: &Patron, f: Field) -> bool {
    serde_json::to_value(p)
        .unwrap()
        .get(f.as_str().replace('-', "_"))
        .is_some()
}

/// Checks one projected record against its original under `rules`.
fn check(
    ctx: &AccessContext,
    rules: &lectern::Rules,
    original: &Patron,
    seen: &Patron,
) -> Result<(), TestCaseError> {
    prop_assert_ne!(&seen.id, &original.id, "the library's id left the host");
    for f in Field::ALL {
        let action = rules.get(f);
        if action == Action::Drop {
            prop_assert!(
                !present(seen, f),
                "{:?}: `{}` was withheld but arrived",
                ctx,
                f
            );
        }
        if action != Action::Keep
            && let (Some(raw), Some(out)) = (text_of(original, f), text_of(seen, f))
        {
            prop_assert_ne!(raw, out, "{:?}: `{}` should be transformed", ctx, f);
        }
    }
    if ctx.purpose != Purpose::PatronExport && seen.interests.is_some() {
        prop_assert!(
            original.consents.is_some_and(|c| c.reading_history),
            "{:?}: reading history without consent",
            ctx
        );
    }
    Ok(())
}

fn policies() -> Vec<PrivacyFilter> {
    let (host, _) = host();
    [plugins::BASELINE_PRIVACY, plugins::STRICT_PRIVACY]
        .into_iter()
        .map(|p| host.load_privacy_filter(p).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_withheld_value_reaches_an_output(patrons in proptest::collection::vec(patron(), 1..25)) {
        for policy in policies() {
            let pipeline = pipeline().with_policy(policy);
            for purpose in PURPOSES {
                for actor in actors() {
                    let ctx = AccessContext { purpose, actor };
                    let rules = pipeline.rules_for(&ctx, None).unwrap();
                    let out = pipeline.filter(&ctx, &patrons).unwrap();
                    for (original, seen) in patrons.iter().zip(&out) {
                        check(&ctx, &rules, original, seen)?;
                    }
                }
            }
        }
    }

    #[test]
    fn no_withheld_value_reaches_a_plugin(patrons in proptest::collection::vec(patron(), 1..25)) {
        let (host, _) = host();
        // Every field a manifest can declare: the address is never one.
        let all = Field::ALL
            .into_iter()
            .filter(|f| *f != Field::Address)
            .map(|f| format!("\"{}\"", f.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let dir = plugin_copy(plugins::TESTKIT, |m| {
            m.replace(r#"fields = ["category", "activity"]"#, &format!("fields = [{all}]"))
        });
        let scorer = host.load_scorer(dir.path()).unwrap();
        for policy in policies() {
            let pipeline = pipeline().with_policy(policy);
            let ctx = AccessContext { purpose: Purpose::Scoring, actor: Actor::Plugin("testkit".into()) };
            let allowed = pipeline.rules_for(&ctx, Some(scorer.plugin())).unwrap();
            for (original, score) in patrons.iter().zip(pipeline.score(&scorer, &patrons).unwrap()) {
                for reason in &score.reasons {
                    if let Some(field) = reason.strip_prefix("field:") {
                        let field: Field = field.parse().unwrap();
                        prop_assert!(allowed.get(field) != Action::Drop, "the scorer got `{}`", field);
                        if field == Field::Interests {
                            prop_assert!(original.consents.is_some_and(|c| c.reading_history));
                        }
                    }
                }
            }
        }
    }
}
