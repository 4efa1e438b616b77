//! `notices`: composes due-soon, overdue (escalating), hold-ready and
//! membership-expiry notices in English and Chinese, on the patron's
//! preferred channel.

use lectern_plugin::host::{config, today};
use lectern_plugin::{Channel, Date, Event, EventKind, Message, Messenger, Patron, PluginError};

struct Notices;

/// The language a notice is written in.
#[derive(Clone, Copy, PartialEq)]
enum Lang {
    En,
    Zh,
}

impl Messenger for Notices {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let lang = match recipient.locale.as_deref() {
            Some(l) if l.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        };
        let Some((stage, subject, body)) = text(event, recipient, lang)? else {
            // Not a circulation notice: another plugin composes it.
            return Ok(Vec::new());
        };
        let channel = channel_for(recipient);
        let subject = if channel == Channel::Sms {
            String::new()
        } else {
            subject
        };
        Ok(vec![Message {
            channel,
            locale: match lang {
                Lang::En => "en",
                Lang::Zh => "zh-CN",
            }
            .to_string(),
            subject,
            body,
            dedupe_key: format!("{}:{stage}:{}", event.id, channel_name(channel)),
            send_after: None,
        }])
    }
}

/// The first preferred channel the patron can be reached on; print otherwise.
fn channel_for(p: &Patron) -> Channel {
    let reachable = |c: &Channel| match c {
        Channel::Email => p.email.is_some(),
        Channel::Sms => p.phone.is_some(),
        Channel::Webhook | Channel::Print => true,
    };
    p.channels
        .iter()
        .flatten()
        .copied()
        .find(reachable)
        .unwrap_or(Channel::Print)
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Webhook => "webhook",
        Channel::Print => "print",
    }
}

/// The escalation stage of an overdue notice.
fn overdue_stage(days: u32) -> u8 {
    match days {
        0..=6 => 1,
        7..=13 => 2,
        _ => 3,
    }
}

/// The notice's stage tag, subject and body; `None` for events this plugin
/// does not handle.
fn text(
    event: &Event,
    p: &Patron,
    lang: Lang,
) -> Result<Option<(String, String, String)>, PluginError> {
    let library = config("library-name").unwrap_or_else(|| match lang {
        Lang::En => "Your library".to_string(),
        Lang::Zh => "图书馆".to_string(),
    });
    let greeting = match (lang, p.name.as_deref()) {
        (Lang::En, Some(n)) => format!("Dear {n},"),
        (Lang::En, None) => "Dear reader,".to_string(),
        (Lang::Zh, Some(n)) => format!("{n}，您好："),
        (Lang::Zh, None) => "读者您好：".to_string(),
    };
    let today = today();
    let out = match (&event.kind, lang) {
        (EventKind::DueSoon(loan), Lang::En) => {
            let days = days_phrase_en(&today, &loan.due_on);
            (
                "due-soon".to_string(),
                format!("Due {days}: {}", loan.title),
                format!(
                    "{greeting}\n\n\"{}\" is due back {days} ({}). You can renew it online or at any desk.\n\n{library}",
                    loan.title,
                    loan.due_on.iso()
                ),
            )
        }
        (EventKind::DueSoon(loan), Lang::Zh) => (
            "due-soon".to_string(),
            format!("到期提醒：《{}》", loan.title),
            format!(
                "{greeting}\n\n您借阅的《{}》将于 {} 到期，可在网上或到服务台办理续借。\n\n{library}",
                loan.title,
                loan.due_on.iso()
            ),
        ),
        (EventKind::Overdue(o), lang) => {
            let stage = overdue_stage(o.days_overdue);
            let (subject, ask) = match (lang, stage) {
                (Lang::En, 1) => ("Overdue reminder", "Please return or renew it soon."),
                (Lang::En, 2) => ("Second overdue notice", "Please return it this week."),
                (Lang::En, _) => (
                    "Final overdue notice",
                    "Please return it now; your borrowing may be suspended.",
                ),
                (Lang::Zh, 1) => ("逾期提醒", "请尽快归还或续借。"),
                (Lang::Zh, 2) => ("第二次逾期通知", "请于本周内归还。"),
                (Lang::Zh, _) => ("最后逾期通知", "请立即归还，否则借阅权限可能被暂停。"),
            };
            let body = match lang {
                Lang::En => format!(
                    "{greeting}\n\n\"{}\" was due on {} and is {} days overdue. {ask}\n\n{library}",
                    o.loan.title,
                    o.loan.due_on.iso(),
                    o.days_overdue
                ),
                Lang::Zh => format!(
                    "{greeting}\n\n您借阅的《{}》应于 {} 归还，已逾期 {} 天。{ask}\n\n{library}",
                    o.loan.title,
                    o.loan.due_on.iso(),
                    o.days_overdue
                ),
            };
            let title = match lang {
                Lang::En => format!("{subject}: {}", o.loan.title),
                Lang::Zh => format!("{subject}：《{}》", o.loan.title),
            };
            (format!("overdue-{stage}"), title, body)
        }
        (EventKind::HoldReady(h), lang) => {
            let until = h.expires_on.as_ref().map(Date::iso);
            let body = match (lang, until) {
                (Lang::En, Some(u)) => format!(
                    "{greeting}\n\n\"{}\" is waiting for you at {} until {u}.\n\n{library}",
                    h.title, h.pickup_branch
                ),
                (Lang::En, None) => format!(
                    "{greeting}\n\n\"{}\" is waiting for you at {}.\n\n{library}",
                    h.title, h.pickup_branch
                ),
                (Lang::Zh, Some(u)) => format!(
                    "{greeting}\n\n您预约的《{}》已到馆，请于 {u} 前到 {} 领取。\n\n{library}",
                    h.title, h.pickup_branch
                ),
                (Lang::Zh, None) => format!(
                    "{greeting}\n\n您预约的《{}》已到馆，请到 {} 领取。\n\n{library}",
                    h.title, h.pickup_branch
                ),
            };
            let subject = match lang {
                Lang::En => format!("Ready for pickup: {}", h.title),
                Lang::Zh => format!("预约到馆：《{}》", h.title),
            };
            ("hold-ready".to_string(), subject, body)
        }
        (EventKind::MembershipExpiring(on), Lang::En) => (
            "membership-expiring".to_string(),
            "Your library membership expires soon".to_string(),
            format!(
                "{greeting}\n\nYour membership expires {} ({}). Renew it to keep borrowing.\n\n{library}",
                days_phrase_en(&today, on),
                on.iso()
            ),
        ),
        (EventKind::MembershipExpiring(on), Lang::Zh) => (
            "membership-expiring".to_string(),
            "读者证即将到期".to_string(),
            format!(
                "{greeting}\n\n您的读者证将于 {} 到期，请及时续期以继续借阅。\n\n{library}",
                on.iso()
            ),
        ),
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn days_phrase_en(today: &Date, on: &Date) -> String {
    match today.days_until(on) {
        ..=0 => "today".to_string(),
        1 => "tomorrow".to_string(),
        n => format!("in {n} days"),
    }
}

lectern_plugin::export_messenger!(Notices);
