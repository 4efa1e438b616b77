//! `recommendations`: tells a reader about a new title in a subject they
//! borrow in. Key readers (the segment a scorer put them in) are offered
//! the first hold before the title goes on display: differentiated service
//! for the readers who contribute most.
//!
//! The host sends it only to patrons who consented to marketing and to the
//! use of their reading history; this plugin sees their interests only then.

use lectern_plugin::host::config;
use lectern_plugin::{Event, EventKind, Message, Messenger, Patron, PluginError, library_name};

struct Recommendations;

impl Messenger for Recommendations {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let EventKind::NewArrival(arrival) = &event.kind else {
            return Ok(Vec::new());
        };
        let scorer = config("key-reader-scorer").unwrap_or_else(|| "key-readers".to_string());
        let segment = config("key-reader-segment").unwrap_or_else(|| "key-reader".to_string());
        let key_reader = recipient.segment(&scorer) == Some(segment.as_str());
        // How often they borrowed in the subject, if the host let interests in.
        let loans = recipient
            .interests
            .iter()
            .flatten()
            .find(|s| s.subject == arrival.subject)
            .map_or(0, |s| s.loans);
        let zh = recipient.reads_chinese();
        let library = library_name(zh);
        let greeting = recipient.greeting();
        let (subject, body) = if zh {
            let why = if loans > 0 {
                format!(
                    "您过去一年在「{}」方向借阅了 {loans} 本书，",
                    arrival.subject
                )
            } else {
                format!("您关注「{}」方向，", arrival.subject)
            };
            let offer = if key_reader {
                "作为重点读者，您可以在上架前优先预约：回复本消息或在目录中预约即可。"
            } else {
                "欢迎在目录中预约。"
            };
            (
                format!("新书推荐：《{}》", arrival.title),
                format!(
                    "{greeting}\n\n{why}新到馆的《{}》或许会让您感兴趣。{offer}\n\n如不希望收到此类推荐，可随时退订。\n\n{library}",
                    arrival.title
                ),
            )
        } else {
            let why = if loans > 0 {
                format!(
                    "You borrowed {loans} title{} in {} this year, so ",
                    if loans == 1 { "" } else { "s" },
                    arrival.subject
                )
            } else {
                format!("As a reader in {}, ", arrival.subject)
            };
            let offer = if key_reader {
                "As one of our key readers you can place the first hold before it goes on display: reply to this message or hold it in the catalogue."
            } else {
                "You can place a hold in the catalogue."
            };
            (
                format!("New in {}: {}", arrival.subject, arrival.title),
                format!(
                    "{greeting}\n\n{why}we thought you would like to know that \"{}\" has just arrived. {offer}\n\nYou can stop these suggestions at any time.\n\n{library}",
                    arrival.title
                ),
            )
        };
        let offer = if key_reader { "early" } else { "open" };
        Ok(vec![Message::to(
            recipient,
            subject,
            body,
            format!("{}:{offer}", event.id),
        )])
    }
}

lectern_plugin::export_messenger!(Recommendations);
