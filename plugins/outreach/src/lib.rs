//! `outreach`: a win-back message for readers a scorer found lapsed,
//! invitations to a survey, and current-awareness digests of new and
//! in-demand titles for key readers and readers who asked for them. All are
//! marketing: the host sends them only to patrons who consented.

use lectern_plugin::host::config;
use lectern_plugin::{
    Channel, Digest, Event, EventKind, Message, Messenger, Patron, Pick, PluginError, library_name,
};

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

    fn compose_digest(digest: &Digest, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        if digest.titles.is_empty() {
            return Ok(Vec::new());
        }
        let library = library_name(recipient.reads_chinese());
        Ok(vec![digest_message(digest, recipient, &library)])
    }
}

/// The most bytes of an SMS digest's text: the host takes ten segments
/// (1,600 bytes) at most, and a digest of twenty titles in Chinese can
/// run past that, so an SMS names titles only while they fit.
const SMS_BUDGET: usize = 1200;

/// A digest with at least one title as one message on the recipient's
/// preferred channel, signed by `library`: the full digest by email, post
/// or webhook, a short one by SMS.
fn digest_message(digest: &Digest, recipient: &Patron, library: &str) -> Message {
    let zh = recipient.reads_chinese();
    let channel = recipient.preferred_channel();
    let (subject, body) = if channel == Channel::Sms {
        (String::new(), digest_sms(digest, zh, library))
    } else {
        (
            if zh {
                format!("{} 您的专题资讯", digest.period)
            } else {
                format!("Your reading digest for {}", digest.period)
            },
            digest_body(digest, recipient, zh, library),
        )
    };
    Message {
        channel,
        locale: if zh { "zh-CN" } else { "en" }.to_string(),
        subject,
        body,
        dedupe_key: format!("{}:digest", digest.id),
        send_after: None,
    }
}

/// The titles picked for `why`, each with its subject, one per line.
fn digest_list(digest: &Digest, why: Pick, zh: bool) -> Vec<String> {
    digest
        .titles
        .iter()
        .filter(|t| t.why == why)
        .map(|t| {
            if zh {
                format!("·《{}》（{}）", t.title, t.subject)
            } else {
                format!("- {} ({})", t.title, t.subject)
            }
        })
        .collect()
}

/// The full digest: the reader's subjects and the department's rising
/// ones, new arrivals, then the titles readers wait for.
fn digest_body(digest: &Digest, recipient: &Patron, zh: bool, library: &str) -> String {
    let mut parts = vec![recipient.greeting()];
    let mut intro = if zh {
        format!("以下是为您整理的 {} 专题资讯", digest.period)
    } else {
        format!("Here is your reading digest for {}", digest.period)
    };
    match (zh, digest.subjects.is_empty()) {
        (true, false) => intro.push_str(&format!(
            "，围绕您关注的方向：{}。",
            digest.subjects.join("、")
        )),
        (true, true) => intro.push('。'),
        (false, false) => intro.push_str(&format!(
            ", in your subjects: {}.",
            digest.subjects.join(", ")
        )),
        (false, true) => intro.push('.'),
    }
    if !digest.rising.is_empty() {
        if zh {
            intro.push_str(&format!(
                "您所在院系近期关注度上升的方向：{}。",
                digest.rising.join("、")
            ));
        } else {
            intro.push_str(&format!(
                " Rising in your department: {}.",
                digest.rising.join(", ")
            ));
        }
    }
    parts.push(intro);
    let (new, wanted) = if zh {
        ("您关注方向的新书：", "众多读者正在等候：")
    } else {
        ("New in your subjects:", "Readers are waiting for:")
    };
    for (why, heading) in [(Pick::NewArrival, new), (Pick::InDemand, wanted)] {
        let list = digest_list(digest, why, zh);
        if !list.is_empty() {
            parts.push(format!("{heading}\n{}", list.join("\n")));
        }
    }
    parts.push(stop(zh).to_string());
    parts.push(library.to_string());
    parts.join("\n\n")
}

/// The digest as one short text: the period, as many titles as fit in
/// [`SMS_BUDGET`], how many more there are, and how to stop them.
fn digest_sms(digest: &Digest, zh: bool, library: &str) -> String {
    let (head, sep) = if zh {
        (format!("{library}：{} 专题资讯：", digest.period), "、")
    } else {
        (
            format!("{library}: your reading digest for {}: ", digest.period),
            "; ",
        )
    };
    let mut named: Vec<String> = Vec::new();
    let mut used = head.len() + stop(zh).len();
    for t in &digest.titles {
        let title = if zh {
            format!("《{}》", t.title)
        } else {
            format!("\"{}\"", t.title)
        };
        if used + sep.len() + title.len() > SMS_BUDGET {
            break;
        }
        used += sep.len() + title.len();
        named.push(title);
    }
    let more = digest.titles.len() - named.len();
    let list = match (zh, named.is_empty(), more) {
        (true, true, n) => format!("{n} 种新书与热门书。"),
        (true, false, 0) => format!("{}。", named.join(sep)),
        (true, false, n) => format!("{}，另有 {n} 种。", named.join(sep)),
        (false, true, 1) => "1 new or in-demand title. ".to_string(),
        (false, true, n) => format!("{n} new and in-demand titles. "),
        (false, false, 0) => format!("{}. ", named.join(sep)),
        (false, false, n) => format!("{} and {n} more. ", named.join(sep)),
    };
    format!("{head}{list}{}", stop(zh))
}

/// How a digest says that the reader can stop receiving it, as the
/// win-back message says it.
fn stop(zh: bool) -> &'static str {
    if zh {
        "如不希望收到此类消息，可随时退订。"
    } else {
        "You can stop these messages at any time."
    }
}

lectern_plugin::export_messenger!(Outreach);

#[cfg(test)]
mod tests {
    //! Digests composed natively: the host's `config` import exists only
    //! inside the sandbox, so these pass the library's name to
    //! [`digest_message`] directly.

    use super::*;
    use lectern_plugin::DigestTitle;

    fn reader(name: &str, locale: &str, channel: Channel) -> Patron {
        Patron {
            id: "p-1".to_string(),
            card_number: None,
            name: Some(name.to_string()),
            email: Some("reader@example.org".to_string()),
            phone: Some("+8613800000000".to_string()),
            birth_date: None,
            age_band: None,
            category: None,
            home_branch: None,
            enrolled_on: None,
            expires_on: None,
            attributes: None,
            consents: None,
            locale: Some(locale.to_string()),
            channels: Some(vec![channel]),
            activity: None,
            interests: None,
            segments: None,
        }
    }

    fn title(title: &str, subject: &str, why: Pick) -> DigestTitle {
        DigestTitle {
            title: title.to_string(),
            subject: subject.to_string(),
            why,
        }
    }

    fn digest(subjects: &[&str], rising: &[&str], titles: Vec<DigestTitle>) -> Digest {
        Digest {
            id: "current-awareness/p-1/2026-11".to_string(),
            at: 1_793_491_200,
            period: "2026-11".to_string(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            rising: rising.iter().map(|s| s.to_string()).collect(),
            titles,
        }
    }

    #[test]
    fn an_english_digest_lists_new_then_wanted_titles() {
        let d = digest(
            &["chemistry", "materials"],
            &["catalysis"],
            vec![
                title("Organic Synthesis", "chemistry", Pick::NewArrival),
                title("Green Catalysts", "catalysis", Pick::InDemand),
                title("Polymer Films", "materials", Pick::NewArrival),
            ],
        );
        let m = digest_message(
            &d,
            &reader("Ana Souza", "en", Channel::Email),
            "City Library",
        );
        assert_eq!(m.channel, Channel::Email);
        assert_eq!(m.locale, "en");
        assert_eq!(m.subject, "Your reading digest for 2026-11");
        assert_eq!(m.dedupe_key, "current-awareness/p-1/2026-11:digest");
        assert_eq!(m.send_after, None);
        assert_eq!(
            m.body,
            "Dear Ana Souza,\n\n\
             Here is your reading digest for 2026-11, in your subjects: chemistry, materials. \
             Rising in your department: catalysis.\n\n\
             New in your subjects:\n\
             - Organic Synthesis (chemistry)\n\
             - Polymer Films (materials)\n\n\
             Readers are waiting for:\n\
             - Green Catalysts (catalysis)\n\n\
             You can stop these messages at any time.\n\n\
             City Library"
        );
    }

    #[test]
    fn a_chinese_digest_is_in_chinese() {
        let d = digest(
            &["化学"],
            &[],
            vec![title("有机合成", "化学", Pick::NewArrival)],
        );
        let m = digest_message(&d, &reader("李明", "zh-CN", Channel::Email), "图书馆");
        assert_eq!(m.locale, "zh-CN");
        assert_eq!(m.subject, "2026-11 您的专题资讯");
        assert_eq!(
            m.body,
            "李明，您好：\n\n\
             以下是为您整理的 2026-11 专题资讯，围绕您关注的方向：化学。\n\n\
             您关注方向的新书：\n·《有机合成》（化学）\n\n\
             如不希望收到此类消息，可随时退订。\n\n图书馆"
        );
    }

    #[test]
    fn empty_sections_and_rising_subjects_are_left_out() {
        let d = digest(
            &[],
            &[],
            vec![title("Green Catalysts", "catalysis", Pick::InDemand)],
        );
        let m = digest_message(
            &d,
            &reader("Ana Souza", "en", Channel::Print),
            "City Library",
        );
        assert_eq!(m.channel, Channel::Print);
        assert!(
            m.body
                .contains("Here is your reading digest for 2026-11.\n"),
            "{}",
            m.body
        );
        assert!(!m.body.contains("New in your subjects"), "{}", m.body);
        assert!(!m.body.contains("Rising"), "{}", m.body);
        assert!(
            m.body
                .contains("Readers are waiting for:\n- Green Catalysts (catalysis)")
        );
    }

    #[test]
    fn a_digest_with_no_titles_composes_nothing() {
        let d = digest(&["chemistry"], &["catalysis"], Vec::new());
        let out = Outreach::compose_digest(&d, &reader("Ana Souza", "en", Channel::Email));
        assert_eq!(out, Ok(Vec::new()));
    }

    #[test]
    fn an_sms_digest_is_short_and_has_no_subject() {
        let titles = (0..20)
            .map(|i| {
                title(
                    &format!("高分子材料科学与工程前沿研究进展第{i}卷"),
                    "材料",
                    Pick::NewArrival,
                )
            })
            .collect();
        let d = digest(&["材料"], &[], titles);
        let m = digest_message(&d, &reader("李明", "zh", Channel::Sms), "图书馆");
        assert_eq!(m.channel, Channel::Sms);
        assert_eq!(m.subject, "");
        assert!(m.body.len() <= 1600, "{} bytes", m.body.len());
        assert!(
            m.body.starts_with("图书馆：2026-11 专题资讯：《高分子"),
            "{}",
            m.body
        );
        assert!(m.body.contains("，另有 "), "{}", m.body);
        assert!(m.body.ends_with("可随时退订。"), "{}", m.body);

        let d = digest(
            &[],
            &[],
            vec![title("Polymer Films", "materials", Pick::NewArrival)],
        );
        let m = digest_message(&d, &reader("Ana Souza", "en", Channel::Sms), "City Library");
        assert_eq!(
            m.body,
            "City Library: your reading digest for 2026-11: \"Polymer Films\". \
             You can stop these messages at any time."
        );
    }
}
