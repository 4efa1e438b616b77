//! `lectern plugin new`: a project that builds, and whose fixture test
//! passes, in Rust, Python or JavaScript, for any world.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::ValueEnum;
use serde_json::json;

use crate::Ctx;
use crate::output::print_json;

/// The languages a template is written in.
#[derive(Clone, Copy, ValueEnum)]
pub enum Lang {
    /// Rust, with the lectern-plugin SDK
    Rust,
    /// Python, built with componentize-py
    Python,
    /// JavaScript, built with jco and componentize-js
    Js,
}

/// The worlds a template implements.
#[derive(Clone, Copy, ValueEnum)]
pub enum TemplateWorld {
    /// Scores patrons
    Scorer,
    /// Composes notices
    Messenger,
    /// Decides what each purpose and role may see
    PrivacyFilter,
}

impl TemplateWorld {
    fn name(self) -> &'static str {
        match self {
            TemplateWorld::Scorer => "scorer",
            TemplateWorld::Messenger => "messenger",
            TemplateWorld::PrivacyFilter => "privacy-filter",
        }
    }
}

/// The componentize-py release the Python template pins.
const COMPONENTIZE_PY: &str = "0.25.1";

const WIT: &str = include_str!("../../../wit/v0.2.0/crm.wit");
const README: &str = include_str!("../templates/README.md");

fn manifest(world: TemplateWorld) -> &'static str {
    match world {
        TemplateWorld::Scorer => include_str!("../templates/scorer.toml"),
        TemplateWorld::Messenger => include_str!("../templates/messenger.toml"),
        TemplateWorld::PrivacyFilter => include_str!("../templates/privacy-filter.toml"),
    }
}

fn source(lang: Lang, world: TemplateWorld) -> &'static str {
    use TemplateWorld as W;
    match (lang, world) {
        (Lang::Rust, W::Scorer) => include_str!("../templates/rust/scorer.rs"),
        (Lang::Rust, W::Messenger) => include_str!("../templates/rust/messenger.rs"),
        (Lang::Rust, W::PrivacyFilter) => include_str!("../templates/rust/privacy-filter.rs"),
        (Lang::Python, W::Scorer) => include_str!("../templates/python/scorer.py"),
        (Lang::Python, W::Messenger) => include_str!("../templates/python/messenger.py"),
        (Lang::Python, W::PrivacyFilter) => include_str!("../templates/python/privacy-filter.py"),
        (Lang::Js, W::Scorer) => include_str!("../templates/js/scorer.js"),
        (Lang::Js, W::Messenger) => include_str!("../templates/js/messenger.js"),
        (Lang::Js, W::PrivacyFilter) => include_str!("../templates/js/privacy-filter.js"),
    }
}

/// Every fixture of a world: the same in every language, since the three
/// templates of a world do the same thing.
fn fixtures(world: TemplateWorld) -> Vec<(&'static str, &'static str)> {
    match world {
        TemplateWorld::Scorer => vec![
            (
                "example.patrons.jsonl",
                include_str!("../templates/fixtures/scorer/example.patrons.jsonl"),
            ),
            (
                "example.expected.json",
                include_str!("../templates/fixtures/scorer/example.expected.json"),
            ),
        ],
        TemplateWorld::Messenger => vec![
            (
                "example.patrons.jsonl",
                include_str!("../templates/fixtures/messenger/example.patrons.jsonl"),
            ),
            (
                "example.events.jsonl",
                include_str!("../templates/fixtures/messenger/example.events.jsonl"),
            ),
            (
                "example.expected.json",
                include_str!("../templates/fixtures/messenger/example.expected.json"),
            ),
        ],
        TemplateWorld::PrivacyFilter => vec![
            (
                "example.patrons.jsonl",
                include_str!("../templates/fixtures/privacy-filter/example.patrons.jsonl"),
            ),
            (
                "example.requests.jsonl",
                include_str!("../templates/fixtures/privacy-filter/example.requests.jsonl"),
            ),
            (
                "example.expected.json",
                include_str!("../templates/fixtures/privacy-filter/example.expected.json"),
            ),
        ],
    }
}

/// `plugin new`.
pub fn new(
    ctx: &Ctx,
    name: &str,
    world: TemplateWorld,
    lang: Lang,
    dir: Option<&Path>,
) -> Result<()> {
    let valid = lectern::is_plugin_id(name) && name.starts_with(|c: char| c.is_ascii_lowercase());
    anyhow::ensure!(
        valid,
        lectern::Error::invalid(
            "NAME",
            format!(
                "{name:?}: a plugin id is lower-case letters, digits and hyphens, starting with \
                 a letter, such as my-scorer"
            )
        )
    );
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!(lectern::Error::invalid(
            dir.display().to_string(),
            "the directory exists and is not empty; choose another NAME or --dir"
        ));
    }
    let crate_name = name.replace('-', "_");
    let (component, build, language) = match lang {
        Lang::Rust => (
            format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
            "rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2"
                .to_string(),
            "Rust",
        ),
        Lang::Python => (
            format!("{name}.wasm"),
            format!(
                "python3 -m pip install -r requirements.txt\ncomponentize-py -d wit -w {} \
                 componentize --stub-wasi app -o {name}.wasm",
                world.name()
            ),
            "Python",
        ),
        Lang::Js => (
            format!("{name}.wasm"),
            "npm install\nnpm run build".to_string(),
            "JavaScript",
        ),
    };
    let fill = |text: &str| {
        text.replace("{{id}}", name)
            .replace("{{world}}", world.name())
            .replace("{{component}}", &component)
            .replace("{{author}}", "you")
            .replace("{{build}}", &build)
            .replace("{{language}}", language)
            .replace("{{componentize_py}}", COMPONENTIZE_PY)
    };
    let mut files: Vec<(String, String)> = vec![
        ("plugin.toml".into(), fill(manifest(world))),
        ("README.md".into(), fill(README)),
    ];
    match lang {
        Lang::Rust => {
            files.push((
                "Cargo.toml".into(),
                fill(include_str!("../templates/rust/Cargo.toml")),
            ));
            files.push(("src/lib.rs".into(), fill(source(lang, world))));
            files.push((".gitignore".into(), "/target\n*.tar\n".into()));
        }
        Lang::Python => {
            files.push(("app.py".into(), fill(source(lang, world))));
            files.push((
                "requirements.txt".into(),
                fill(include_str!("../templates/python/requirements.txt")),
            ));
            files.push(("wit/crm.wit".into(), WIT.into()));
            files.push((".gitignore".into(), "*.wasm\n*.tar\n__pycache__/\n".into()));
        }
        Lang::Js => {
            files.push(("app.js".into(), fill(source(lang, world))));
            files.push((
                "package.json".into(),
                fill(include_str!("../templates/js/package.json")),
            ));
            files.push(("wit/crm.wit".into(), WIT.into()));
            files.push((".gitignore".into(), "*.wasm\n*.tar\nnode_modules/\n".into()));
        }
    }
    for (file, text) in fixtures(world) {
        files.push((format!("fixtures/{file}"), fill(text)));
    }
    for (file, text) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if ctx.json {
        return print_json(&json!({
            "dir": dir,
            "id": name,
            "world": world.name(),
            "files": files.iter().map(|(f, _)| f).collect::<Vec<_>>(),
            "build": build.lines().collect::<Vec<_>>(),
        }));
    }
    out!(
        "wrote a {} {language} plugin, {name}, in {}",
        world.name(),
        dir.display()
    );
    out!("build it, in {}:", dir.display());
    for line in build.lines() {
        out!("  {line}");
    }
    out!("then test it: lectern plugin test {}", dir.display());
    Ok(())
}
