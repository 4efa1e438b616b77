//! The reader pages: registration, the preference centre, one-click
//! unsubscribe and surveys, in English and Chinese.
//!
//! Every page is rendered on the server and works without JavaScript; it
//! fetches nothing from elsewhere (styles are inline, there are no images
//! or fonts), and the service sends a content security policy that says
//! so. A link from a message opens a page with one button: mail scanners
//! follow links, and a one-time link must not be used up by one. What a
//! page shows comes from the link; nothing on a page names a reader but
//! to that reader.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use lectern::{
    AnswerProblem, Channel, Lectern, LinkProblem, LinkPurpose, QuestionKind, ReaderChoice,
    ReaderPrefs, Registration, SurveyDef,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use crate::App;

/// English or Chinese.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Zh,
}

impl Lang {
    fn of(tag: &str) -> Lang {
        if tag.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    fn t(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    fn other(self) -> (Lang, &'static str) {
        match self {
            Lang::En => (Lang::Zh, "中文"),
            Lang::Zh => (Lang::En, "English"),
        }
    }
}

/// The language a request asks for: `?lang=`, then `Accept-Language`.
fn asked(query: &LangQuery, headers: &HeaderMap) -> Option<Lang> {
    if let Some(l) = &query.lang {
        return Some(Lang::of(l));
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let first = accept.split(',').next()?.trim();
    (!first.is_empty() && first != "*").then(|| Lang::of(first))
}

#[derive(Deserialize, Default)]
pub(crate) struct LangQuery {
    lang: Option<String>,
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans','PingFang SC','Microsoft YaHei',sans-serif;\
margin:0;color:#1a1a1a;background:#fff;line-height:1.5;font-size:1.05rem}\
header,main,footer{max-width:40rem;margin:0 auto;padding:1rem 1.25rem}\
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #767676}\
a{color:#0b4f9c}a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #b35c00;outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}\
fieldset{border:1px solid #767676;border-radius:4px;margin:1rem 0;padding:.5rem 1rem}\
legend{font-weight:600;padding:0 .3rem}\
label{display:block;margin:.4rem 0}\
input[type=text],input[type=email],input[type=tel],input[type=number],select,textarea{\
display:block;width:100%;padding:.5rem;border:1px solid #555;border-radius:4px;font:inherit;color:#1a1a1a;background:#fff}\
input[type=checkbox],input[type=radio]{width:1.2rem;height:1.2rem;margin-right:.5rem;vertical-align:middle}\
button{font:inherit;font-weight:600;color:#fff;background:#0b4f9c;border:0;border-radius:4px;padding:.6rem 1.4rem;cursor:pointer;margin:.5rem 0}\
.hint{color:#4a4a4a;font-size:.95rem;margin:.2rem 0}\
.errors{border:2px solid #a4001d;padding:.5rem 1rem;border-radius:4px}.errors h2{color:#a4001d;font-size:1.1rem;margin:.3rem 0}\
.ok{border:2px solid #1e6b2e;padding:.5rem 1rem;border-radius:4px}\
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}\
footer{color:#4a4a4a;font-size:.9rem;border-top:1px solid #767676}";

/// A whole page.
fn page(lang: Lang, title: &str, switch: Option<String>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a class="skip" href="#main" { (lang.t("Skip to the content", "跳到正文")) }
                header {
                    span { (lang.t("Your library", "您的图书馆")) }
                    @if let Some(href) = switch {
                        @let (other, name) = lang.other();
                        a href=(href) lang=(other.tag()) hreflang=(other.tag()) { (name) }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p { (lang.t(
                        "The library uses what you give here only to serve you, and shares it with no one.",
                        "图书馆仅将您在此提供的信息用于为您服务，不会提供给任何第三方。")) }
                }
            }
        }
    }
}

/// A page as a response, with headers that keep it to itself.
fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The page for a link that does not open: no data, and what to do.
fn link_problem(lang: Lang, problem: LinkProblem) -> Response {
    let (status, title, text) = match problem {
        LinkProblem::Invalid => (
            StatusCode::NOT_FOUND,
            lang.t("This link does not work", "此链接无效"),
            lang.t(
                "The link is not one the library sent, or it was cut short when it was copied. \
                 Open it again from the message, or ask at any library desk.",
                "此链接不是图书馆发送的，或在复制时被截断。请从原消息中重新打开，或到图书馆服务台咨询。",
            ),
        ),
        LinkProblem::Expired => (
            StatusCode::GONE,
            lang.t("This link has expired", "此链接已过期"),
            lang.t(
                "Links in the library's messages work for a limited time, to keep your account safe. \
                 The library's next message carries a new one, or ask at any library desk.",
                "为保护您的账户安全，图书馆消息中的链接仅在一段时间内有效。下一封消息会附上新链接，您也可以到服务台咨询。",
            ),
        ),
        LinkProblem::Used => (
            StatusCode::GONE,
            lang.t("This link has been used", "此链接已使用过"),
            lang.t(
                "Each link works once, to keep your account safe. Open the link in the library's \
                 next message, or ask at any library desk.",
                "为保护您的账户安全，每个链接只能使用一次。请使用图书馆下一封消息中的链接，或到服务台咨询。",
            ),
        ),
    };
    respond(status, page(lang, title, None, html! { p { (text) } }))
}

/// Runs `f` on the library on a blocking thread; a failure is a page.
async fn with_library<T: Send + 'static>(
    app: &Arc<App>,
    lang: Lang,
    f: impl FnOnce(&mut Lectern) -> lectern::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut library = app.library.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut library)
    })
    .await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!("reader page: {e:#}");
            let (status, text) = match e.kind() {
                lectern::ErrorKind::NotFound => (
                    StatusCode::NOT_FOUND,
                    lang.t(
                        "The library no longer holds this record.",
                        "图书馆已不再保存此记录。",
                    ),
                ),
                lectern::ErrorKind::Invalid => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    lang.t(
                        "Something in the form could not be accepted; go back and check it.",
                        "表单中有内容无法接受，请返回检查。",
                    ),
                ),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    lang.t(
                        "The library's system is busy. Please try again in a few minutes.",
                        "系统繁忙，请几分钟后再试。",
                    ),
                ),
            };
            Err(respond(
                status,
                page(lang, lang.t("Sorry", "抱歉"), None, html! { p { (text) } }),
            ))
        }
        Err(_) => Err(respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            page(
                lang,
                lang.t("Sorry", "抱歉"),
                None,
                html! { p { (lang.t("Please try again.", "请重试。")) } },
            ),
        )),
    }
}

/// The form fields of a posted body, repeated keys kept.
fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn ticked(form: &[(String, String)], name: &str) -> bool {
    field(form, name).is_some()
}

/// The routes of the reader pages.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/r/register", get(register_form).post(register))
        .route("/r/v/{token}", get(verify_page).post(verify))
        .route("/r/p/{token}", get(prefs_door).post(prefs_open))
        .route("/r/prefs", axum::routing::post(prefs_save))
        .route("/r/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/r/s/{token}", get(survey_page).post(survey_answer))
}

/// A page with one button that posts to itself.
fn door(lang: Lang, title: &str, text: &str, button: &str) -> Response {
    respond(
        StatusCode::OK,
        page(
            lang,
            title,
            None,
            html! {
                p { (text) }
                form method="post" { button type="submit" { (button) } }
            },
        ),
    )
}

fn link_lang(query: &LangQuery, headers: &HeaderMap) -> Lang {
    asked(query, headers).unwrap_or(Lang::En)
}

/// The page a link from a message opens: one button when the link works
/// (or, `used_ok`, worked before), else the page that says why not.
async fn door_page(
    app: &Arc<App>,
    lang: Lang,
    token: String,
    purpose: LinkPurpose,
    used_ok: bool,
    [title, text, button]: [&'static str; 3],
) -> Response {
    let checked = with_library(app, lang, move |l| {
        l.check_link(&token, &purpose, Utc::now())
    })
    .await;
    match checked {
        Ok(Ok(())) => door(lang, title, text, button),
        Ok(Err(LinkProblem::Used)) if used_ok => door(lang, title, text, button),
        Ok(Err(p)) => link_problem(lang, p),
        Err(page) => page,
    }
}

/// A page that says something went through.
fn done_page(lang: Lang, title: &str, text: &str) -> Response {
    respond(
        StatusCode::OK,
        page(
            lang,
            title,
            None,
            html! { p class="ok" role="status" { (text) } },
        ),
    )
}

/// The answer to a posted form: `ok`'s page when the link held, else the
/// page that says why not, or the error page.
fn answer<T>(
    lang: Lang,
    result: Result<Result<T, LinkProblem>, Response>,
    ok: impl FnOnce(T) -> Response,
) -> Response {
    match result {
        Ok(Ok(v)) => ok(v),
        Ok(Err(p)) => link_problem(lang, p),
        Err(page) => page,
    }
}

// --- registration --------------------------------------------------------

fn registration_form(app: &App, lang: Lang, r: &Registration, problems: &[String]) -> Markup {
    let rules = &app.readers;
    let (other, _) = lang.other();
    page(
        lang,
        lang.t("Join the library", "注册成为图书馆读者"),
        Some(format!("?lang={}", other.tag())),
        html! {
            p { (lang.t(
                "Register here and the library will send you a link to confirm your email address. \
                 You will get your library card at your first visit.",
                "在此注册后，图书馆会发送一个链接以确认您的电子邮箱。首次到馆时即可领取读者证。")) }
            @if !problems.is_empty() {
                div class="errors" role="alert" {
                    h2 { (lang.t("Please check the form", "请检查表单")) }
                    ul { @for p in problems { li { (p) } } }
                }
            }
            form method="post" action="/r/register" {
                input type="hidden" name="lang" value=(lang.tag());
                label for="given" { (lang.t("Given name", "名")) }
                input type="text" id="given" name="given_name" required autocomplete="given-name" maxlength="100" value=(r.given_name);
                label for="family" { (lang.t("Family name", "姓")) }
                input type="text" id="family" name="family_name" required autocomplete="family-name" maxlength="100" value=(r.family_name);
                label for="email" { (lang.t("Email", "电子邮箱")) }
                input type="email" id="email" name="email" required autocomplete="email" maxlength="254" value=(r.email) aria-describedby="email-hint";
                p class="hint" id="email-hint" { (lang.t("We send a link to confirm it.", "我们会发送确认链接。")) }
                label for="phone" { (lang.t("Mobile (optional)", "手机（选填）")) }
                input type="tel" id="phone" name="phone" autocomplete="tel" maxlength="30" value=(r.phone.clone().unwrap_or_default());
                label for="category" { (lang.t("I am", "读者类型")) }
                select id="category" name="category" {
                    @for c in &rules.categories {
                        option value=(c) selected[*c == r.category] { (c) }
                    }
                }
                @if !rules.subjects.is_empty() {
                    fieldset {
                        legend { (lang.t("Subjects that interest me (optional)", "感兴趣的学科（选填）")) }
                        @for (i, s) in rules.subjects.iter().enumerate() {
                            label for=(format!("interest-{i}")) {
                                input type="checkbox" id=(format!("interest-{i}")) name="interests" value=(s) checked[r.interests.contains(s)];
                                (s)
                            }
                        }
                    }
                }
                fieldset {
                    legend { (lang.t("Language for messages", "消息语言")) }
                    label for="lang-en" { input type="radio" id="lang-en" name="locale" value="en" checked[lang == Lang::En]; "English" }
                    label for="lang-zh" { input type="radio" id="lang-zh" name="locale" value="zh-CN" checked[lang == Lang::Zh]; "中文" }
                }
                fieldset {
                    legend { (lang.t("What you agree to (optional)", "您的同意（选填）")) }
                    p class="hint" { (lang.t(
                        "Leave these unticked and you still get every notice about your own loans and holds.",
                        "不勾选也不影响您收到关于本人借阅和预约的通知。")) }
                    label for="consent-marketing" {
                        input type="checkbox" id="consent-marketing" name="consent_marketing" value="yes" checked[r.consent_marketing];
                        (lang.t("Send me news of new books, events and surveys.", "向我发送新书、活动和调查信息。"))
                    }
                    label for="consent-history" {
                        input type="checkbox" id="consent-history" name="consent_reading_history" value="yes" checked[r.consent_reading_history];
                        (lang.t("Use what I borrow to suggest books to me.", "根据我的借阅记录为我推荐图书。"))
                    }
                }
                div class="trap" aria-hidden="true" {
                    label for="website" { "Website" }
                    input type="text" id="website" name="website" tabindex="-1" autocomplete="off";
                }
                button type="submit" { (lang.t("Register", "注册")) }
            }
        },
    )
}

async fn register_form(
    State(app): State<Arc<App>>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = asked(&q, &headers).unwrap_or(Lang::En);
    if app.readers.public_url.is_none() {
        return link_problem(lang, LinkProblem::Invalid);
    }
    let r = Registration {
        locale: lang.tag().into(),
        category: app.readers.categories.first().cloned().unwrap_or_default(),
        ..Registration::default()
    };
    respond(StatusCode::OK, registration_form(&app, lang, &r, &[]))
}

async fn register(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let lang = Lang::of(field(&f, "lang").unwrap_or("en"));
    if app.readers.public_url.is_none() {
        return link_problem(lang, LinkProblem::Invalid);
    }
    let done = || {
        done_page(
            lang,
            lang.t("Check your email", "请查收邮件"),
            lang.t(
                "Thank you. We have sent a link to the address you gave; open it to confirm your registration.",
                "谢谢！我们已向您填写的地址发送了一个链接，请打开它以完成注册。",
            ),
        )
    };
    // A form that filled the hidden field was not filled by a person: it
    // is thanked, and nothing is kept.
    if field(&f, "website").is_some_and(|w| !w.is_empty()) {
        return done();
    }
    if !app.registrations.allows(peer.ip()) {
        return respond(
            StatusCode::TOO_MANY_REQUESTS,
            page(
                lang,
                lang.t("Please wait", "请稍候"),
                None,
                html! {
                    p { (lang.t("Too many registrations came from your network. Please try again in an hour, or ask at any library desk.",
                        "来自您网络的注册过多。请一小时后再试，或到图书馆服务台办理。")) }
                },
            ),
        );
    }
    let r = Registration {
        given_name: field(&f, "given_name").unwrap_or_default().to_string(),
        family_name: field(&f, "family_name").unwrap_or_default().to_string(),
        email: field(&f, "email").unwrap_or_default().trim().to_string(),
        phone: field(&f, "phone")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        category: field(&f, "category").unwrap_or_default().to_string(),
        interests: f
            .iter()
            .filter(|(k, _)| k == "interests")
            .map(|(_, v)| v.clone())
            .collect(),
        locale: field(&f, "locale").unwrap_or(lang.tag()).to_string(),
        consent_marketing: ticked(&f, "consent_marketing"),
        consent_reading_history: ticked(&f, "consent_reading_history"),
    };
    let problems = r.problems(&app.readers);
    if !problems.is_empty() {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            registration_form(&app, lang, &r, &problems),
        );
    }
    app.registrations.failed(peer.ip());
    match with_library(&app, lang, move |l| l.register(&r, Utc::now())).await {
        Ok(()) => done(),
        Err(page) => page,
    }
}

async fn verify_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let texts = [
        lang.t("Confirm your email address", "确认电子邮箱"),
        lang.t(
            "Press the button to confirm this is your address.",
            "请点击按钮，确认这是您的邮箱地址。",
        ),
        lang.t("Confirm", "确认"),
    ];
    door_page(&app, lang, token, LinkPurpose::Verify, false, texts).await
}

async fn verify(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let verified = with_library(&app, lang, move |l| {
        l.verify_registration(&token, Utc::now())
    })
    .await;
    answer(lang, verified, |()| {
        done_page(
            lang,
            lang.t("You are registered", "注册成功"),
            lang.t(
                "Your email address is confirmed. Bring an identity document to any desk and the library will give you your card.",
                "您的邮箱已确认。请携带身份证件到任一服务台领取读者证。",
            ),
        )
    })
}

// --- preference centre ---------------------------------------------------

fn channel_name(lang: Lang, c: Channel) -> &'static str {
    match c {
        Channel::Email => lang.t("Email", "电子邮件"),
        Channel::Sms => lang.t("Text message", "短信"),
        Channel::Print => lang.t("Letter or at the desk", "信件或服务台"),
        Channel::Webhook => lang.t("The library's own system", "图书馆系统"),
    }
}

fn prefs_page(p: &ReaderPrefs, saved: Option<usize>) -> Response {
    let lang = Lang::of(&p.locale);
    respond(
        StatusCode::OK,
        page(
            lang,
            lang.t("Your message settings", "消息设置"),
            None,
            html! {
                @if let Some(cancelled) = saved {
                    p class="ok" role="status" {
                        (lang.t("Saved. ", "已保存。"))
                        @if cancelled > 0 {
                            (match lang {
                                Lang::En => format!("{cancelled} message(s) waiting to go were withdrawn."),
                                Lang::Zh => format!("已撤回 {cancelled} 条待发送的消息。"),
                            })
                        }
                    }
                }
                form method="post" action="/r/prefs" {
                    input type="hidden" name="session" value=(p.session);
                    fieldset {
                        legend { (lang.t("Reach me by", "联系方式")) }
                        @for (c, on) in &p.channels {
                            label for=(format!("ch-{}", c.as_str())) {
                                input type="checkbox" id=(format!("ch-{}", c.as_str())) name="channel" value=(c.as_str()) checked[*on];
                                (channel_name(lang, *c))
                            }
                        }
                    }
                    fieldset {
                        legend { (lang.t("When", "时间")) }
                        label for="digest" {
                            input type="checkbox" id="digest" name="digest" value="yes" checked[p.digest];
                            (lang.t("Gather each day's notices into one message", "每天将通知合并为一条消息"))
                        }
                        label for="notice-days" { (lang.t("Days of warning before a loan is due", "到期前提前提醒的天数")) }
                        input type="number" id="notice-days" name="notice_days" min="0" max="30" value=(p.notice_days);
                    }
                    fieldset {
                        legend { (lang.t("Language", "语言")) }
                        label for="lang-en" { input type="radio" id="lang-en" name="locale" value="en" checked[lang == Lang::En]; "English" }
                        label for="lang-zh" { input type="radio" id="lang-zh" name="locale" value="zh-CN" checked[lang == Lang::Zh]; "中文" }
                    }
                    fieldset {
                        legend { (lang.t("What you agree to", "您的同意")) }
                        label for="marketing" {
                            input type="checkbox" id="marketing" name="marketing" value="yes" checked[p.marketing];
                            (lang.t("News of new books, events and surveys", "新书、活动和调查信息"))
                        }
                        label for="history" {
                            input type="checkbox" id="history" name="reading_history" value="yes" checked[p.reading_history];
                            (lang.t("Use what I borrow to suggest books to me", "根据我的借阅记录为我推荐图书"))
                        }
                        label for="awareness" {
                            input type="checkbox" id="awareness" name="awareness" value="yes" checked[p.awareness];
                            (lang.t(
                                "A monthly digest of new and sought-after titles in my subjects (needs both consents above)",
                                "每月专题资讯：我所关注学科的新书和热门图书（需同时勾选以上两项同意）"))
                        }
                        p class="hint" { (lang.t(
                            "Unticking takes effect at once. Notices about your own loans and holds always go. \
                             To give a consent you have not given before, ask at any desk.",
                            "取消勾选立即生效。关于本人借阅和预约的通知始终会发送。如需给予此前未给予的同意，请到服务台办理。")) }
                    }
                    button type="submit" { (lang.t("Save", "保存")) }
                }
            },
        ),
    )
}

async fn prefs_door(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let texts = [
        lang.t("Your message settings", "消息设置"),
        lang.t(
            "Choose how and when the library writes to you. The link works once; the page stays open for 30 minutes.",
            "选择图书馆与您联系的方式和时间。此链接只能使用一次，页面可保持打开 30 分钟。",
        ),
        lang.t("Open my settings", "打开我的设置"),
    ];
    door_page(&app, lang, token, LinkPurpose::Preferences, false, texts).await
}

async fn prefs_open(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let opened = with_library(&app, lang, move |l| l.open_preferences(&token, Utc::now())).await;
    answer(lang, opened, |p| prefs_page(&p, None))
}

async fn prefs_save(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let f = form(&body);
    let session = field(&f, "session").unwrap_or_default().to_string();
    let locale = match field(&f, "locale") {
        Some("zh-CN") => "zh-CN",
        _ => "en",
    };
    let lang = Lang::of(locale);
    let channels_on = f
        .iter()
        .filter(|(k, _)| k == "channel")
        .filter_map(|(_, v)| serde_json::from_value(serde_json::Value::String(v.clone())).ok())
        .collect();
    let Some(notice_days) = field(&f, "notice_days")
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d <= 30)
    else {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                lang,
                lang.t("Please check the form", "请检查表单"),
                None,
                html! {
                    p class="errors" role="alert" { (lang.t("Give 0 to 30 days of warning. Go back and try again.", "提前提醒天数请填写 0 到 30。请返回重试。")) }
                },
            ),
        );
    };
    let choice = ReaderChoice {
        channels_on,
        digest: ticked(&f, "digest"),
        notice_days,
        locale: locale.to_string(),
        marketing: ticked(&f, "marketing"),
        reading_history: ticked(&f, "reading_history"),
        awareness: ticked(&f, "awareness"),
    };
    let saved = with_library(&app, lang, move |l| {
        l.save_reader_preferences(&session, &choice, Utc::now())
    })
    .await;
    answer(lang, saved, |(p, cancelled)| {
        prefs_page(&p, Some(cancelled))
    })
}

async fn unsubscribe_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let texts = [
        lang.t("Stop news, surveys and invitations", "退订新书通报、调查和邀请"),
        lang.t(
            "Press the button and the library sends you no more news, surveys or invitations. \
             Notices about your own loans and holds still go.",
            "点击按钮后，图书馆将不再向您发送新书通报、调查和邀请。关于本人借阅和预约的通知仍会发送。",
        ),
        lang.t("Unsubscribe", "退订"),
    ];
    door_page(&app, lang, token, LinkPurpose::Unsubscribe, true, texts).await
}

/// One-click unsubscribe: the page's button, or a mail client posting
/// `List-Unsubscribe=One-Click` (RFC 8058).
async fn unsubscribe(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = link_lang(&q, &headers);
    let done = with_library(&app, lang, move |l| l.unsubscribe(&token, Utc::now())).await;
    answer(lang, done, |_| {
        done_page(
            lang,
            lang.t("You are unsubscribed", "已退订"),
            lang.t(
                "The library will send you no more news, surveys or invitations.",
                "图书馆将不再向您发送新书通报、调查和邀请。",
            ),
        )
    })
}

// --- surveys -------------------------------------------------------------

fn survey_form(
    def: &SurveyDef,
    lang: Lang,
    token: &str,
    problems: &[String],
    given: &[(String, String)],
) -> Markup {
    let l = lang.tag();
    let (other, _) = lang.other();
    let chosen = |q: &str, v: &str| given.iter().any(|(k, x)| k == &format!("q.{q}") && x == v);
    page(
        lang,
        def.title.get(l),
        Some(format!("/r/s/{token}?lang={}", other.tag())),
        html! {
            @if let Some(intro) = &def.intro { p { (intro.get(l)) } }
            p class="hint" { (if def.link_answers {
                lang.t("Your answers are kept without your name unless you choose otherwise below.", "除非您在下方另行选择，您的回答将以匿名方式保存。")
            } else {
                lang.t("Your answers are anonymous: the library keeps them without your name.", "您的回答是匿名的：图书馆保存回答时不记录您的姓名。")
            }) }
            @if !problems.is_empty() {
                div class="errors" role="alert" {
                    h2 { (lang.t("Please check your answers", "请检查您的回答")) }
                    ul { @for p in problems { li { (p) } } }
                }
            }
            form method="post" action=(format!("/r/s/{token}?lang={l}")) {
                @for q in &def.questions {
                    @let name = format!("q.{}", q.id);
                    @match q.kind {
                        QuestionKind::Single | QuestionKind::Multiple => {
                            fieldset {
                                legend { (q.text.get(l)) @if q.required { " *" } }
                                @for o in &q.options {
                                    @let id = format!("{}-{}", q.id, o.id);
                                    label for=(id) {
                                        input type=(if q.kind == QuestionKind::Single { "radio" } else { "checkbox" })
                                            id=(id) name=(name) value=(o.id) checked[chosen(&q.id, &o.id)];
                                        (if lang == Lang::Zh { o.zh.as_deref().unwrap_or(&o.en) } else { &o.en })
                                    }
                                }
                            }
                        }
                        QuestionKind::Scale => {
                            fieldset {
                                legend { (q.text.get(l)) @if q.required { " *" } }
                                @let (lo, hi) = q.scale();
                                p class="hint" { (match lang {
                                    Lang::En => format!("{lo} is the least, {hi} the most."),
                                    Lang::Zh => format!("{lo} 为最低，{hi} 为最高。"),
                                }) }
                                @for n in lo..=hi {
                                    @let id = format!("{}-{n}", q.id);
                                    label for=(id) {
                                        input type="radio" id=(id) name=(name) value=(n) checked[chosen(&q.id, &n.to_string())];
                                        (n)
                                    }
                                }
                            }
                        }
                        QuestionKind::Text => {
                            label for=(q.id) { (q.text.get(l)) @if q.required { " *" } }
                            textarea id=(q.id) name=(name) rows="4" maxlength="2000" {
                                (given.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or(""))
                            }
                        }
                    }
                }
                @if def.link_answers {
                    fieldset {
                        legend { (lang.t("Your name with your answers (optional)", "回答是否署名（选填）")) }
                        label for="link" {
                            input type="checkbox" id="link" name="link" value="yes";
                            (lang.t("Keep my answers with my library record.", "将我的回答与我的读者记录一起保存。"))
                        }
                        label for="use" {
                            input type="checkbox" id="use" name="use" value="yes";
                            (lang.t("Let the library use them to serve me better.", "允许图书馆据此为我提供更好的服务。"))
                        }
                    }
                }
                button type="submit" { (lang.t("Send my answers", "提交回答")) }
            }
        },
    )
}

async fn survey_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let fallback = asked(&q, &headers).unwrap_or(Lang::En);
    let t = token.clone();
    match with_library(&app, fallback, move |l| l.open_survey(&t, Utc::now())).await {
        Ok(Ok((def, reader_lang))) => {
            let lang = q
                .lang
                .as_deref()
                .map(Lang::of)
                .unwrap_or(Lang::of(&reader_lang));
            respond(StatusCode::OK, survey_form(&def, lang, &token, &[], &[]))
        }
        Ok(Err(p)) => link_problem(fallback, p),
        Err(page) => page,
    }
}

async fn survey_answer(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<LangQuery>,
    body: Bytes,
) -> Response {
    let lang = Lang::of(q.lang.as_deref().unwrap_or("en"));
    let f = form(&body);
    let (t, given) = (token.clone(), f.clone());
    let result = with_library(&app, lang, move |l| {
        let answered = l.answer_survey(&t, &given, lang.tag(), Utc::now())?;
        let def = match &answered {
            Err(AnswerProblem::Answers(_)) => l.open_survey(&t, Utc::now())?.ok().map(|d| d.0),
            _ => None,
        };
        Ok((answered, def))
    })
    .await;
    match result {
        Ok((Ok(()), _)) => done_page(
            lang,
            lang.t("Thank you", "感谢您的参与"),
            lang.t(
                "Your answers are saved. They help the library plan for its readers.",
                "您的回答已保存，将帮助图书馆更好地为读者规划服务。",
            ),
        ),
        Ok((Err(AnswerProblem::Answers(problems)), Some(def))) => respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            survey_form(&def, lang, &token, &problems, &f),
        ),
        Ok((Err(AnswerProblem::Link(p)), _)) => link_problem(lang, p),
        Ok((Err(AnswerProblem::Answers(_)), None)) => link_problem(lang, LinkProblem::Invalid),
        Err(page) => page,
    }
}
