//! `outreach`: a win-back message for readers a scorer found lapsed, and
//! invitations to a survey. Both are marketing: the host sends them only to
//! patrons who consented.

use lectern_plugin::host::config;
use lectern_plugin::{Event, EventKind, Message, Messenger, Patron, PluginError};

struct Outreach;

impl Messenger for Outreach {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let zh = recipient.reads_chinese();
        let library = config("library-name")
            .unwrap_or_else(|| if zh { "图书馆" } else { "Your library" }.to_string());
        let greeting = match (zh, &recipient.name) {
            (true, Some(n)) => format!("{n}，您好："),
            (true, None) => "读者您好：".to_string(),
            (false, Some(n)) => format!("Dear {n},"),
            (false, None) => "Dear reader,".to_string(),
        };
        // Their strongest subject, if the host let reading history in.
        let favourite = recipient
            .interests
            .iter()
            .flatten()
            .max_by_key(|s| s.loans)
            .map(|s| s.subject.clone());
        let (tag, subject, body) = match &event.kind {
            EventKind::WinBack if zh => (
                "win-back",
                "好久不见，图书馆想念您".to_string(),
                format!(
                    "{greeting}\n\n您已有一段时间没有来图书馆了。{}我们新增了电子书、数据库和研讨空间，读者证仍然有效，随时欢迎回来。\n\n如不希望收到此类消息，可随时退订。\n\n{library}",
                    favourite
                        .map(|f| format!("「{f}」方向最近到了不少新书。"))
                        .unwrap_or_default()
                ),
            ),
            EventKind::WinBack => (
                "win-back",
                "We have missed you at the library".to_string(),
                format!(
                    "{greeting}\n\nIt has been a while since your last visit. {}Your card still works for e-books, databases and study rooms, and we would love to see you again.\n\nYou can stop these messages at any time.\n\n{library}",
                    favourite
                        .map(|f| format!("There is plenty that is new in {f}. "))
                        .unwrap_or_default()
                ),
            ),
            EventKind::SurveyInvitation(s) if zh => (
                "survey",
                format!("邀请您参与：{}", s.title),
                format!(
                    "{greeting}\n\n我们正在开展「{}」，希望听到您的意见，大约需要五分钟：\n{}\n\n{library}",
                    s.title, s.url
                ),
            ),
            EventKind::SurveyInvitation(s) => (
                "survey",
                format!("Tell us what you think: {}", s.title),
                format!(
                    "{greeting}\n\nWe are running \"{}\" and would value your view. It takes about five minutes:\n{}\n\n{library}",
                    s.title, s.url
                ),
            ),
            _ => return Ok(Vec::new()),
        };
        let channel = recipient.preferred_channel();
        Ok(vec![Message {
            channel,
            locale: if zh { "zh-CN" } else { "en" }.to_string(),
            subject,
            body,
            dedupe_key: format!("{}:{tag}", event.id),
            send_after: None,
        }])
    }
}

lectern_plugin::export_messenger!(Outreach);
