//! `{{id}}`: tells readers that a hold is ready for pickup.

use lectern_plugin::host::config;
use lectern_plugin::{Channel, Event, EventKind, Message, Messenger, Patron, PluginError};

struct Plugin;

impl Messenger for Plugin {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let EventKind::HoldReady(hold) = &event.kind else {
            // Not ours: another messenger composes it.
            return Ok(Vec::new());
        };
        let library = config("library-name").unwrap_or_else(|| "the library".into());
        let name = recipient.name.clone().unwrap_or_else(|| "reader".into());
        let takes_email = recipient
            .channels
            .as_ref()
            .is_none_or(|c| c.contains(&Channel::Email));
        let channel = if recipient.email.is_some() && takes_email {
            Channel::Email
        } else {
            Channel::Print
        };
        Ok(vec![Message {
            channel,
            locale: "en".into(),
            subject: format!("Ready for pickup: {}", hold.title),
            body: format!(
                "Dear {name},\n\n{} is waiting for you at {}.\n\n{library}",
                hold.title, hold.pickup_branch
            ),
            dedupe_key: "ready".into(),
            send_after: None,
        }])
    }
}

lectern_plugin::export_messenger!(Plugin);
