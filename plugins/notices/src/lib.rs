//! `notices`: composes due-soon, overdue (escalating), hold-ready,
//! hold-expiring and membership-expiry notices in English and Chinese, on the patron's
//! preferred channel, and the courteous note that other readers wait for a
//! title the patron has (`title-wanted`, through `passing`).

use lectern_plugin::host::today;
use lectern_plugin::{
    Channel, Date, Event, EventKind, Loan, Message, Messenger, Patron, PluginError, TitleWanted,
    library_name,
};

struct Notices;

/// The language a notice is written in.
#[derive(Clone, Copy, PartialEq)]
enum Lang {
    En,
    Zh,
}

impl Messenger for Notices {
    fn compose(event: &Event, recipient: &Patron) -> Result<Vec<Message>, PluginError> {
        let lang = if recipient.reads_chinese() {
            Lang::Zh
        } else {
            Lang::En
        };
        let Some((stage, subject, body)) = text(event, recipient, lang)? else {
            // Not a circulation notice: another plugin composes it.
            return Ok(Vec::new());
        };
        Ok(vec![message(
            &event.id, recipient, lang, &stage, subject, body,
        )])
    }

    fn compose_title_wanted(
        event: &TitleWanted,
        recipient: &Patron,
    ) -> Result<Vec<Message>, PluginError> {
        let lang = if recipient.reads_chinese() {
            Lang::Zh
        } else {
            Lang::En
        };
        let library = library_name(lang == Lang::Zh);
        let greeting = recipient.greeting();
        let loan = &event.loan;
        let n = event.waiting;
        let (subject, body) = match (lang, event.overdue) {
            (Lang::En, false) => (
                format!("Others are waiting for \"{}\"", loan.title),
                format!(
                    "{greeting}\n\n{} {} waiting for {}, which is due back on {}. If you have \
                     finished with it, returning it on time passes it on to them. Thank you.\n\n{library}",
                    n,
                    if n == 1 { "reader is" } else { "readers are" },
                    item(loan, lang),
                    loan.due_on.iso()
                ),
            ),
            (Lang::En, true) => (
                format!("Others are waiting for \"{}\"", loan.title),
                format!(
                    "{greeting}\n\n{} {} waiting for {}, which was due back on {}. Please \
                     return it as soon as you can, so that it passes on. Thank you.\n\n{library}",
                    n,
                    if n == 1 { "reader is" } else { "readers are" },
                    item(loan, lang),
                    loan.due_on.iso()
                ),
            ),
            (Lang::Zh, false) => (
                format!("《{}》有读者在等候", loan.title),
                format!(
                    "{greeting}\n\n您借阅的{}应于 {} 归还，目前有 {n} 位读者在预约等候。如您已阅毕，按时归还即可让它传到下一位读者手中。谢谢！\n\n{library}",
                    item(loan, lang),
                    loan.due_on.iso()
                ),
            ),
            (Lang::Zh, true) => (
                format!("《{}》有读者在等候", loan.title),
                format!(
                    "{greeting}\n\n您借阅的{}已于 {} 到期，目前有 {n} 位读者在预约等候。请尽快归还，以便传给下一位读者。谢谢！\n\n{library}",
                    item(loan, lang),
                    loan.due_on.iso()
                ),
            ),
        };
        let stage = if event.overdue {
            "wanted-overdue"
        } else {
            "wanted-due"
        };
        Ok(vec![message(
            &event.id, recipient, lang, stage, subject, body,
        )])
    }
}

/// One message on the patron's preferred channel.
fn message(
    event: &str,
    recipient: &Patron,
    lang: Lang,
    stage: &str,
    subject: String,
    body: String,
) -> Message {
    let channel = recipient.preferred_channel();
    let subject = if channel == Channel::Sms {
        String::new()
    } else {
        subject
    };
    Message {
        channel,
        locale: match lang {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
        .to_string(),
        subject,
        body,
        dedupe_key: format!("{event}:{stage}:{}", channel.name()),
        send_after: None,
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

/// The loan's item as a letter names it: the title, and the barcode on the
/// book where the library's export gives one.
fn item(loan: &Loan, lang: Lang) -> String {
    match (&loan.barcode, lang) {
        (Some(b), Lang::En) => format!("\"{}\" (barcode {b})", loan.title),
        (None, Lang::En) => format!("\"{}\"", loan.title),
        (Some(b), Lang::Zh) => format!("《{}》（条码 {b}）", loan.title),
        (None, Lang::Zh) => format!("《{}》", loan.title),
    }
}

/// The notice's stage tag, subject and body; `None` for events this plugin
/// does not handle.
fn text(
    event: &Event,
    p: &Patron,
    lang: Lang,
) -> Result<Option<(String, String, String)>, PluginError> {
    let library = library_name(lang == Lang::Zh);
    let greeting = p.greeting();
    let today = today();
    let out = match (&event.kind, lang) {
        (EventKind::DueSoon(loan), Lang::En) => {
            let days = days_phrase_en(&today, &loan.due_on);
            (
                "due-soon".to_string(),
                format!("Due {days}: {}", loan.title),
                format!(
                    "{greeting}\n\n{} is due back {days} ({}). You can renew it online or at any desk.\n\n{library}",
                    item(loan, lang),
                    loan.due_on.iso()
                ),
            )
        }
        (EventKind::DueSoon(loan), Lang::Zh) => (
            "due-soon".to_string(),
            format!("到期提醒：《{}》", loan.title),
            format!(
                "{greeting}\n\n您借阅的{}将于 {} 到期，可在网上或到服务台办理续借。\n\n{library}",
                item(loan, lang),
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
                    "{greeting}\n\n{} was due on {} and is {} days overdue. {ask}\n\n{library}",
                    item(&o.loan, lang),
                    o.loan.due_on.iso(),
                    o.days_overdue
                ),
                Lang::Zh => format!(
                    "{greeting}\n\n您借阅的{}应于 {} 归还，已逾期 {} 天。{ask}\n\n{library}",
                    item(&o.loan, lang),
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
        (EventKind::HoldExpiring(h), lang) => {
            let until = h
                .expires_on
                .as_ref()
                .map(Date::iso)
                .unwrap_or_else(|| today.iso());
            let (subject, body) = match lang {
                Lang::En => (
                    format!("Last days to pick up: {}", h.title),
                    format!(
                        "{greeting}\n\n\"{}\" is still waiting for you at {}. We keep it until {until}; after that it goes to the next reader.\n\n{library}",
                        h.title, h.pickup_branch
                    ),
                ),
                Lang::Zh => (
                    format!("预约即将过期：《{}》", h.title),
                    format!(
                        "{greeting}\n\n您预约的《{}》仍在 {} 等您领取，保留至 {until}，逾期将转给下一位读者。\n\n{library}",
                        h.title, h.pickup_branch
                    ),
                ),
            };
            ("hold-expiring".to_string(), subject, body)
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
