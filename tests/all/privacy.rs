//! The privacy invariant: a field reaches a plugin only if the manifest
//! declares it and the policy allows it; outputs see only what the policy
//! allows for the purpose and role.

use lectern::{AccessContext, Actor, Patron, Purpose};
use lectern_tests::{host, patron, pipeline, plugin_copy, plugins, sample_patrons};

const ALL_FIELDS: &str = r#"fields = ["card-number", "name", "email", "phone", "birth-date", "age-band", "category", "home-branch", "enrolled-on", "expires-on", "attributes", "consents", "locale", "channels", "activity", "interests"]"#;

/// What the testkit plugin reports it received, per patron.
fn received(manifest_fields: Option<&str>, policy: bool, patrons: &[Patron]) -> Vec<Vec<String>> {
    let (host, _) = host();
    let dir = plugin_copy(plugins::TESTKIT, |m| match manifest_fields {
        Some(f) => m.replace(r#"fields = ["category", "activity"]"#, f),
        None => m,
    });
    let scorer = host.load_scorer(dir.path()).unwrap();
    // A policy is always in force; without baseline-privacy, one that keeps
    // every field shows what the manifest alone lets through.
    let policy = if policy {
        plugins::BASELINE_PRIVACY
    } else {
        plugins::KEEP_ALL_PRIVACY
    };
    pipeline()
        .with_policy(host.load_privacy_filter(policy).unwrap())
        .score(&scorer, patrons)
        .unwrap()
        .into_iter()
        .map(|s| s.reasons)
        .collect()
}

fn fields(reasons: &[String]) -> Vec<&str> {
    reasons
        .iter()
        .filter_map(|r| r.strip_prefix("field:"))
        .collect()
}

#[test]
fn a_plugin_gets_only_the_fields_its_manifest_declares() {
    let wang = patron("P0001"); // has every field
    let got = received(None, false, std::slice::from_ref(&wang));
    assert_eq!(fields(&got[0]), ["category", "activity"]);

    // The same plugin declaring everything gets everything: the probe works.
    let got = received(Some(ALL_FIELDS), false, &[wang]);
    assert_eq!(fields(&got[0]).len(), 16, "{got:?}");
}

#[test]
fn a_plugin_sees_a_token_never_the_patrons_id() {
    let got = received(None, false, &[patron("P0001")]);
    let seen = got[0][0].strip_prefix("id:").unwrap();
    assert_ne!(seen, "P0001");
    assert_eq!(seen, pipeline().token("P0001"));
}

#[test]
fn the_policy_narrows_what_the_manifest_declares() {
    let got = received(Some(ALL_FIELDS), true, &[patron("P0001"), patron("P0004")]);
    let wang = fields(&got[0]);
    assert_eq!(
        wang,
        [
            "age-band",
            "category",
            "home-branch",
            "enrolled-on",
            "expires-on",
            "attributes",
            "consents",
            "activity",
            "interests"
        ]
    );
    for identity in ["card-number", "name", "email", "phone", "birth-date"] {
        assert!(!wang.contains(&identity), "scoring must not see {identity}");
    }
    // Priya did not consent to the use of her reading history.
    assert!(!fields(&got[1]).contains(&"interests"), "{:?}", got[1]);
}

fn filter(role: &str, patrons: &[Patron]) -> Vec<Patron> {
    let (host, _) = host();
    let policy = host.load_privacy_filter(plugins::BASELINE_PRIVACY).unwrap();
    let ctx = AccessContext {
        purpose: Purpose::StaffView,
        actor: Actor::Staff(role.into()),
    };
    pipeline()
        .with_policy(policy)
        .filter(&ctx, patrons)
        .unwrap()
}

#[test]
fn staff_access_is_tiered_by_role() {
    let wang = patron("P0001");
    let desk = &filter("circulation-desk", std::slice::from_ref(&wang))[0];
    assert_eq!(desk.name.as_deref(), Some("Wang Li"));
    assert_eq!(desk.email.as_deref(), Some("w***@univ.example.edu"));
    assert_eq!(
        desk.activity, None,
        "the desk does not see reading activity"
    );

    let analyst = &filter("analyst", std::slice::from_ref(&wang))[0];
    assert_eq!(
        (analyst.name.as_ref(), analyst.email.as_ref()),
        (None, None)
    );
    assert!(
        analyst.card_number.as_deref().unwrap().starts_with("t-"),
        "{analyst:?}"
    );
    assert_eq!(
        analyst.activity.unwrap().loans_365d,
        50,
        "counts are banded"
    );

    let admin = &filter("administrator", std::slice::from_ref(&wang))[0];
    assert_eq!(admin.birth_date, wang.birth_date);

    // A role the policy does not declare does not exist: refused, with
    // the roles there are, and nothing read.
    let (host, _) = host();
    let policy = host.load_privacy_filter(plugins::BASELINE_PRIVACY).unwrap();
    let stranger = AccessContext {
        purpose: Purpose::StaffView,
        actor: Actor::Staff("volunteer".into()),
    };
    let err = pipeline()
        .with_policy(policy)
        .filter(&stranger, &[wang])
        .unwrap_err();
    assert_eq!(err.kind(), lectern::ErrorKind::Denied);
    assert!(
        err.to_string().starts_with(
            "unknown staff role `volunteer`: the privacy policy `baseline-privacy` declares \
             these roles: circulation-desk, analyst, administrator"
        ),
        "{err}"
    );
}

#[test]
fn no_personal_value_reaches_an_analyst() {
    let patrons = sample_patrons();
    let out = serde_json::to_string(&filter("analyst", &patrons)).unwrap();
    for p in &patrons {
        let personal = [&p.id, p.card_number.as_ref().unwrap()]
            .into_iter()
            .chain(p.name.as_ref())
            .chain(p.email.as_ref())
            .chain(p.phone.as_ref());
        for value in personal {
            assert!(!out.contains(value.as_str()), "{value} reached the analyst");
        }
        if let Some(b) = p.birth_date {
            assert!(
                !out.contains(&b.to_string()),
                "a birth date reached the analyst"
            );
        }
    }
    // And reading history only where the patron consented.
    let filtered = filter("analyst", &patrons);
    for (p, f) in patrons.iter().zip(&filtered) {
        let consented = p.consents.is_some_and(|c| c.reading_history);
        assert_eq!(
            f.interests.is_some(),
            consented && p.interests.is_some(),
            "{}",
            p.id
        );
    }
}

#[test]
fn consent_has_the_last_word_even_without_a_policy() {
    // Priya (P0004) declined the use of her reading history; the plugin
    // declares interests and no policy is loaded.
    let got = received(Some(ALL_FIELDS), false, &[patron("P0004"), patron("P0001")]);
    assert!(!fields(&got[0]).contains(&"interests"), "{:?}", got[0]);
    assert!(fields(&got[1]).contains(&"interests"), "{:?}", got[1]);
}

#[test]
fn marketing_reaches_only_patrons_who_consented() {
    let (host, _) = host();
    let notices = host.load_messenger(plugins::NOTICES).unwrap();
    let arrival = |id: &str, patron: &str| lectern::Event {
        id: id.into(),
        patron: patron.into(),
        at: "2026-11-28T08:00:00Z".parse().unwrap(),
        kind: lectern::EventKind::NewArrival {
            title: "Organic Chemistry".into(),
            subject: "QD".into(),
        },
    };
    // Margaret (P0002) did not consent to marketing; Wang (P0001) did.
    let report = pipeline()
        .compose(
            &notices,
            &[arrival("N1", "P0002"), arrival("N2", "P0001")],
            &sample_patrons(),
        )
        .unwrap();
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.event.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped[0],
        ("N1", "the patron has not consented to marketing")
    );
    // Wang's event reached the messenger, which has no template for it.
    assert_eq!(skipped[1], ("N2", "no notice for this event"));
}

#[test]
fn a_library_swaps_its_policy_without_recompiling() {
    let (host, _) = host();
    let dir = plugin_copy(plugins::TESTKIT, |m| {
        m.replace(r#"fields = ["category", "activity"]"#, ALL_FIELDS)
    });
    let scorer = host.load_scorer(dir.path()).unwrap();
    let strict = host.load_privacy_filter(plugins::STRICT_PRIVACY).unwrap();
    let got = pipeline()
        .with_policy(strict.clone())
        .score(&scorer, &[patron("P0001")])
        .unwrap();
    assert_eq!(
        fields(&got[0].reasons),
        ["category", "attributes", "activity", "interests"]
    );

    let wang = patron("P0001");
    for role in [
        "circulation-desk",
        "analyst",
        "administrator",
        "privacy-officer",
    ] {
        let ctx = AccessContext {
            purpose: Purpose::StaffView,
            actor: Actor::Staff(role.into()),
        };
        let seen = &pipeline()
            .with_policy(strict.clone())
            .filter(&ctx, std::slice::from_ref(&wang))
            .unwrap()[0];
        assert_eq!(seen.birth_date, None, "{role} saw a birth date");
        if role == "circulation-desk" {
            assert_eq!(
                (seen.name.as_deref(), seen.email.as_ref()),
                (Some("Wang Li"), None)
            );
        }
    }
    // `patron-export` is one patron's own export, never a filter.
    let export = AccessContext {
        purpose: Purpose::PatronExport,
        actor: Actor::Staff("administrator".into()),
    };
    let err = pipeline()
        .with_policy(strict)
        .filter(&export, std::slice::from_ref(&wang))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`patron-export` is the purpose of one patron's own export"),
        "{err}"
    );
}

#[test]
fn aggregates_hide_groups_smaller_than_k() {
    let (host, _) = host();
    let policy = host.load_privacy_filter(plugins::BASELINE_PRIVACY).unwrap();
    // The default floor refuses k = 1 whatever the caller asks.
    let ctx = AccessContext {
        purpose: Purpose::Analytics,
        actor: Actor::Staff("analyst".into()),
    };
    let err = pipeline()
        .with_policy(policy.clone())
        .aggregate(&ctx, &sample_patrons(), &[lectern::Field::Category], 1)
        .unwrap_err();
    assert_eq!(err.kind(), lectern::ErrorKind::Denied);
    assert!(
        err.to_string().contains("below the library's floor of 5"),
        "{err}"
    );
    // A library that sets its floor at 1 may ask for every group.
    let pipeline = lectern::Lectern::open(
        lectern_tests::shared_host(),
        lectern::SqliteStore::temporary().unwrap(),
        lectern_tests::keyring(),
        lectern::Config {
            k_floor: 1,
            ..lectern_tests::config()
        },
    )
    .unwrap()
    .pipeline(lectern_tests::as_of())
    .with_policy(policy);
    let ctx = AccessContext {
        purpose: Purpose::Analytics,
        actor: Actor::Staff("analyst".into()),
    };
    // Twelve sample patrons: 4 faculty, 2 graduate, 2 undergraduate, 3 public, 1 staff.
    let patrons = sample_patrons();
    let all = pipeline
        .aggregate(&ctx, &patrons, &[lectern::Field::Category], 1)
        .unwrap();
    let sizes: Vec<(String, usize)> = all
        .groups
        .iter()
        .map(|g| (g.key[0].clone(), g.patrons))
        .collect();
    assert_eq!(
        sizes,
        [
            ("faculty".into(), 4),
            ("public".into(), 3),
            ("graduate".into(), 2),
            ("undergraduate".into(), 2),
            ("staff".into(), 1)
        ]
    );
    let k3 = pipeline
        .aggregate(&ctx, &patrons, &[lectern::Field::Category], 3)
        .unwrap();
    assert_eq!(
        k3.groups.iter().map(|g| g.patrons).collect::<Vec<_>>(),
        [4, 3]
    );
    assert_eq!(k3.hidden_groups, 3);
    // Five readers in the three hidden groups: at least k, so said.
    assert_eq!(k3.hidden_readers, Some(5));
    assert_eq!(
        k3.hidden().to_string(),
        "5 readers in 3 groups of fewer than 3 readers each are not shown"
    );
    let k5 = pipeline
        .aggregate(&ctx, &patrons, &[lectern::Field::Category], 5)
        .unwrap();
    // Every group is under 5: twelve readers, at least k, so said.
    assert_eq!(k5.hidden_readers, Some(12));
    let k13 = pipeline
        .aggregate(&ctx, &patrons, &[lectern::Field::Category], 13)
        .unwrap();
    assert_eq!((k13.hidden_groups, k13.hidden_readers), (5, None));
    let default = pipeline
        .aggregate(
            &ctx,
            &patrons,
            &[lectern::Field::Category],
            lectern::DEFAULT_K,
        )
        .unwrap();
    assert!(
        default.groups.is_empty(),
        "no group of twelve patrons reaches 10"
    );

    let err = pipeline
        .aggregate(&ctx, &patrons, &[lectern::Field::Name], 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "the privacy policy does not let `name` out for analytics by staff role `analyst`"
        ),
        "{err}"
    );
}

#[test]
fn the_privacy_plugin_reads_only_what_it_declares_after_consent_and_is_audited() {
    let library = lectern_tests::library();
    let analyst = AccessContext {
        purpose: Purpose::StaffView,
        actor: Actor::Staff("analyst".into()),
    };
    // baseline-privacy refines each record for the analyst.
    library
        .filter(&analyst, &sample_patrons(), lectern_tests::as_of())
        .unwrap();
    let token = library.keyring().pseudonyms().patron_token("P0001");
    let rows = library.store().audit_rows_naming(&[token]).unwrap();
    let reads: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.purpose.as_str(), r.fields.as_str()))
        .collect();
    // First the filter's own read, of consents alone; then the analyst's.
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(reads[0], ("baseline-privacy", "staff-view", "consents"));
    assert_eq!(reads[1].0, "analyst");
}
