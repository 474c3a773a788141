//! The man page and shell completions in `doc/` are generated from the CLI definition; this
//! test fails when they are stale. Regenerate with `UPDATE_GOLDEN=1 cargo test --test docs`.

use std::fs;
use std::path::PathBuf;

use abuse_mailer::cli::Cli;
use clap::CommandFactory;
use clap_complete::{Shell, generate};

fn doc(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("doc")
        .join(rel)
}

fn check(rel: &str, generated: Vec<u8>) {
    let path = doc(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &generated).unwrap();
    }
    let committed = fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{rel} is stale: UPDATE_GOLDEN=1 cargo test --test docs"
    );
}

/// Each page as clap_mangen renders it: the command's, then one per subcommand, whose
/// names the first page's SUBCOMMANDS section gives (`abuse-mailer-run(1)`).
fn man_pages(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub.clone(), pages);
    }
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render(&mut out).unwrap();
    pages.push((man.get_filename(), out));
}

#[test]
fn man_page_is_current() {
    // `help` is no command of its own: no page for it, and none named.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    man_pages(cmd, &mut pages);
    let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
    for command in ["run", "preview", "history", "show", "check", "firewall"] {
        assert!(
            names.contains(&format!("abuse-mailer-{command}.1").as_str()),
            "{command}: {names:?}"
        );
    }
    let main = &pages.last().unwrap().1;
    let text = String::from_utf8(main.clone()).unwrap();
    // Every page the first one refers to is there.
    for (name, _) in &pages[..pages.len() - 1] {
        let reference = name.trim_end_matches(".1").replace('-', "\\-") + "(1)";
        assert!(text.contains(&reference), "{reference} not named");
    }
    for (name, page) in pages {
        check(&name, page);
    }
}

#[test]
fn shell_completions_are_current() {
    for (shell, name) in [
        (Shell::Bash, "abuse-mailer.bash"),
        (Shell::Zsh, "_abuse-mailer"),
        (Shell::Fish, "abuse-mailer.fish"),
    ] {
        let mut out = Vec::new();
        generate(shell, &mut Cli::command(), "abuse-mailer", &mut out);
        assert!(String::from_utf8_lossy(&out).contains("preview"), "{name}");
        check(&format!("completions/{name}"), out);
    }
}
