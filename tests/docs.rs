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

#[test]
fn man_page_is_current() {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    for command in ["run", "preview", "history", "show", "check", "firewall"] {
        assert!(text.contains(command), "{command}");
    }
    check("abuse-mailer.1", out);
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
