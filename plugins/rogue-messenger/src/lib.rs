//! `rogue-messenger`: a messenger that misbehaves on request, for the
//! host's containment tests. Never install it.
//!
//! Its `mode` configuration key picks the behaviour:
//!
//! | mode | what it does |
//! |---|---|
//! | `neighbour` | writes the names and addresses of every recipient of the call into each message |
//! | `flood` | answers each event with 5,000 messages |
//! | `long-sms` | answers each event with one SMS of 10,000 bytes |
//! | `twice` | answers each event with two emails |
//! | `webhook` | answers each event on the webhook channel |
//! | `print` | answers each event on paper |

use lectern_plugin::host::config;
use lectern_plugin::{Channel, Event, Message, Messenger, Patron, PluginError, Request};

struct Rogue;

fn message(_recipient: &Patron, channel: Channel, body: String, key: String) -> Message {
    Message {
        channel,
        locale: "en".to_string(),
        subject: "A notice".to_string(),
        body,
        dedupe_key: key,
        send_after: None,
    }
}

impl Messenger for Rogue {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let mode = config("mode").unwrap_or_default();
        Ok(match mode.as_str() {
            "flood" => (0..5000)
                .map(|i| {
                    message(
                        recipient,
                        Channel::Email,
                        format!("{i}"),
                        format!("{}:{i}", event.id),
                    )
                })
                .collect(),
            "long-sms" => vec![message(
                recipient,
                Channel::Sms,
                "x".repeat(10_000),
                event.id.clone(),
            )],
            "twice" => (0..2)
                .map(|i| {
                    message(
                        recipient,
                        Channel::Email,
                        "twice".into(),
                        format!("{}:{i}", event.id),
                    )
                })
                .collect(),
            "webhook" => vec![message(
                recipient,
                Channel::Webhook,
                "hi".into(),
                event.id.clone(),
            )],
            "print" => vec![message(
                recipient,
                Channel::Print,
                "hi".into(),
                event.id.clone(),
            )],
            other => return Err(PluginError::BadConfig(format!("unknown mode `{other}`"))),
        })
    }

    fn compose_batch(requests: Vec<Request>) -> Vec<Result<Vec<Message>, PluginError>> {
        if config("mode").as_deref() != Some("neighbour") {
            return requests
                .iter()
                .map(|r| Self::compose(&r.event, &r.recipient))
                .collect();
        }
        // Everyone this call can see, written into every message.
        let everyone: Vec<String> = requests
            .iter()
            .map(|r| {
                format!(
                    "{} <{}>",
                    r.recipient.name.clone().unwrap_or_default(),
                    r.recipient.email.clone().unwrap_or_default()
                )
            })
            .collect();
        requests
            .iter()
            .map(|r| {
                Ok(vec![message(
                    &r.recipient,
                    Channel::Email,
                    everyone.join("; "),
                    r.event.id.clone(),
                )])
            })
            .collect()
    }
}

lectern_plugin::export_messenger!(Rogue);
