//! What an operator reading README takes at its word, run against the binary: a relative
//! `--config`, `run --json` in a script, a custom template's mistakes and variables, and what
//! `--help` says of `reread`.

mod common;

use common::{Ran, Setup, drop_line, observed_hits};

/// The standard set-up with every path relative to the configuration file's folder.
fn relative_setup() -> Setup {
    let s = Setup::new(
        r#"
state_dir = "state"
timezone = "UTC"

[[source]]
path = "messages"

[[provider]]
name = "aws"
to = ["ec2-abuse@amazon.com"]
ranges = "{repo}/fixtures/ranges/aws-ip-ranges.json"
services = ["EC2"]

[report]
from = "Abuse desk <abuse@example.org>"
min_hits = 1
max_age_days = 0

[mail]
transport = "file"
dir = "outbox"
"#,
    );
    s.write(
        "messages",
        &[
            drop_line("23:51:25", "34.223.47.190", "UDP", 53),
            drop_line("23:51:26", "34.223.47.190", "UDP", 53),
            drop_line("23:51:27", "3.5.140.2", "TCP", 22),
        ]
        .concat(),
    );
    s
}

/// `args` run from `cwd` with `--config` spelled `config` (relative to `cwd`).
fn run_in(s: &Setup, cwd: &std::path::Path, config: &str, args: &[&str]) -> Ran {
    Ran::from(
        s.command_with(config, args)
            .current_dir(cwd)
            .output()
            .unwrap(),
    )
}

#[test]
fn a_config_named_by_a_relative_path_names_its_sources_as_an_absolute_one_does() {
    let s = relative_setup();
    // An operator in the configuration's folder runs it by hand.
    run_in(&s, s.dir.path(), "config.toml", &["run"]).ok();
    let once = observed_hits(&s);
    assert_eq!(once.get("34.223.47.190"), Some(&2), "{once:?}");
    // The file given as README says, from another folder, under the timer's spelling of the
    // configuration: the same source, whatever the working folder.
    let parent = s.dir.path().parent().unwrap();
    let name = s.dir.path().file_name().unwrap().to_str().unwrap();
    let file = s.path("messages");
    run_in(
        &s,
        parent,
        &format!("{name}/config.toml"),
        &["reread", "--source", file.to_str().unwrap()],
    )
    .ok();
    // The timer's run: the file read again passes over what the first read counted.
    s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s), once, "a packet counted twice");
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let cursors: i64 = db
        .query_row("SELECT count(*) FROM cursor", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cursors, 1, "one file, one cursor");
}

#[test]
fn run_json_prints_one_json_document_on_stdout() {
    let s = relative_setup();
    let ran = s.run(&["run", "--json"]).ok();
    // A script pipes it into jq: nothing but the document on standard output.
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", ran.stdout));
    assert_eq!(doc["reports"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(s.outbox().len(), 1);
    // What was sent is still said, on standard error beside the summary.
    assert!(ran.stderr.contains(": sent: "), "{}", ran.stderr);
}

/// [`relative_setup`] with a `templates_dir`, `templates`, made empty.
fn with_templates() -> Setup {
    let s = relative_setup();
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    s.reconfigure(&config.replace("[report]", "[report]\ntemplates_dir = \"templates\""));
    std::fs::create_dir(s.path("templates")).unwrap();
    s
}

#[test]
fn a_template_that_cannot_render_stops_a_run_as_a_configuration_error() {
    let s = with_templates();
    s.write("templates/subject.txt", "Abuse from {{ provder_label }}\n");
    let check = s.run(&["check"]);
    assert_eq!(check.code, 78, "{}", check.stdout);
    for command in ["run", "preview"] {
        let ran = s.run(&[command]);
        assert_eq!(ran.code, 78, "{command}: {}", ran.stderr);
        assert!(ran.stderr.contains("subject.txt"), "{}", ran.stderr);
    }
    assert!(s.outbox().is_empty());
    // Fixed, the report goes out: nothing was lost meanwhile.
    s.write("templates/subject.txt", "Abuse from {{ provider_label }}\n");
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

/// A template that renders without end (one loop inside another over large ranges) ends
/// `check`, `preview` and `run` with a configuration error naming it once it has rendered for
/// ten seconds: a run stuck on it held the lock for hours, every later run giving way, no
/// report going out and cron hearing nothing. What the run read is kept: once the template is
/// fixed, the report goes out.
#[test]
fn a_template_that_renders_without_end_stops_the_run_naming_it() {
    let s = with_templates();
    s.write(
        "templates/body.txt",
        "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{% endfor %}{% endfor %}\n",
    );
    // All at once: each works out the same patience.
    let ran = std::thread::scope(|scope| {
        let started = ["check", "preview", "run"].map(|command| {
            let s = &s;
            (command, scope.spawn(move || s.run_bounded(&[command])))
        });
        started.map(|(command, ran)| (command, ran.join().unwrap()))
    });
    for (command, ran) in ran {
        assert_eq!(ran.code, 78, "{command}: {}{}", ran.stdout, ran.stderr);
        let said = format!("{}{}", ran.stdout, ran.stderr);
        assert!(
            said.contains("template body.txt: still rendering after 10 s of work"),
            "{command}: {said}"
        );
    }
    assert!(s.outbox().is_empty());
    std::fs::remove_file(s.path("templates/body.txt")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

/// A template whose loops write as they go stops once it has rendered more than 128 MiB,
/// named: its text grew by hundreds of MiB a second, and the run used gigabytes of memory, or
/// aborted, before it had worked ten seconds.
#[test]
fn a_template_that_renders_too_much_text_stops_the_run_naming_it() {
    let s = with_templates();
    s.write(
        "templates/body.txt",
        "{% for i in range(end=100000) %}{% for j in range(end=100000) %}{{ \"x\" | pad(width=998) }}{% endfor %}{% endfor %}\n",
    );
    for command in ["preview", "run"] {
        let ran = s.run_bounded(&[command]);
        assert_eq!(ran.code, 78, "{command}: {}", ran.stderr);
        assert!(
            ran.stderr
                .contains("template body.txt: rendered more than 128 MiB"),
            "{command}: {}",
            ran.stderr
        );
    }
    assert!(s.outbox().is_empty());
    std::fs::remove_file(s.path("templates/body.txt")).unwrap();
    s.run(&["run"]).ok();
    assert_eq!(s.outbox().len(), 1);
}

#[test]
fn listed_addresses_carry_their_own_log_lines_in_a_template() {
    let s = with_templates();
    s.write(
        "templates/body.txt",
        "{% for a in listed %}{{ a.ip }} {{ a.evidence | length }};{% endfor %}\n\
         {% for a in ips %}{{ a.ip }} {{ a.evidence | length }};{% endfor %}\n",
    );
    let out = s.run(&["preview"]).ok().stdout;
    let lines: Vec<&str> = out.lines().filter(|l| l.ends_with(';')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    // The busiest first in `listed`, sorted in `ips`; the same lines either way.
    assert_eq!(lines[0], "34.223.47.190 2;3.5.140.2 1;", "{out}");
    assert_eq!(lines[1], "3.5.140.2 1;34.223.47.190 2;", "{out}");
}

#[test]
fn reread_help_says_no_packet_counts_twice() {
    let s = relative_setup();
    let help = s.run(&["reread", "--help"]).ok().stdout;
    assert!(!help.contains("count again"), "{help}");
    assert!(help.contains("not counted again"), "{help}");
}

#[test]
fn the_ipset_rules_drop_what_they_log_and_keep_to_the_ports() {
    let s = relative_setup();
    let hooks = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["firewall", "--provider", "aws", "--format", "ipset"];
        args.extend_from_slice(extra);
        let out = s.run(&args).ok().stdout;
        out.lines()
            .filter(|l| l.contains("--match-set") && !l.ends_with("-j ACCEPT"))
            .map(|l| l.trim_start_matches("#   ").to_string())
            .collect()
    };
    // Neighbour discovery from the host's own link is let through first (IPv6 alone).
    let all = s
        .run(&["firewall", "--provider", "aws", "--format", "ipset"])
        .ok()
        .stdout;
    let accepted: Vec<&str> = all.lines().filter(|l| l.ends_with("-j ACCEPT")).collect();
    assert_eq!(accepted.len(), 5, "{all}");
    assert!(
        accepted
            .iter()
            .all(|l| l.contains("ip6tables -I INPUT") && l.contains("--icmpv6-type 13"))
    );
    for family in ["iptables", "ip6tables"] {
        let all = hooks(&[]);
        let ours: Vec<&String> = all.iter().filter(|l| l.starts_with(family)).collect();
        assert_eq!(ours.len(), 2, "{all:?}");
        assert!(ours[0].contains("-j LOG") && ours[0].contains("\"INPUT-DROP:\""));
        assert!(ours[1].ends_with("-j DROP"), "{all:?}");
        // README: --ports 80,443 blocks only those ports, whatever the format.
        let some = hooks(&["--ports", "80,443"]);
        let ours: Vec<&String> = some.iter().filter(|l| l.starts_with(family)).collect();
        assert_eq!(ours.len(), 4, "{some:?}");
        assert!(
            ours.iter().all(|l| l.contains("--dports 80,443")),
            "{some:?}"
        );
        assert_eq!(ours.iter().filter(|l| l.ends_with("-j DROP")).count(), 2);
    }
}

#[test]
fn quiet_reread_prints_nothing() {
    let s = relative_setup();
    s.run(&["run"]).ok();
    let file = s.path("messages");
    let quiet = s
        .run(&["-q", "reread", "--source", file.to_str().unwrap()])
        .ok();
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));
    // Said without -q; and the reread took effect either way.
    let told = s.run(&["reread", "--source", file.to_str().unwrap()]).ok();
    assert!(told.stdout.contains("reads it again"), "{}", told.stdout);
    let again = s.run(&["run", "--dry-run", "--json"]).ok().json();
    assert_eq!(again["summary"]["lines_counted_before"], 3, "{again}");
}

#[test]
fn firewall_for_a_provider_without_ranges_is_refused_not_an_empty_block() {
    let s = relative_setup();
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    // Matched by its AS alone: there is nothing a firewall rule could name.
    let by_asn: String = config
        .lines()
        .filter(|l| !l.starts_with("ranges =") && !l.starts_with("services ="))
        .map(|l| match l {
            "[mail]" => "[enrich]\nasn_db = \"{repo}/fixtures/asn/example-asn.mmdb\"\n\n[mail]\n"
                .to_string(),
            "to = [\"ec2-abuse@amazon.com\"]" => format!("{l}\nasns = [16509]\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    s.reconfigure(&by_asn);
    for format in ["iptables", "ip6tables", "nft", "ipset"] {
        let ran = s.run(&["firewall", "--provider", "aws", "--format", format]);
        assert_eq!(ran.code, 78, "{format}: {}{}", ran.stdout, ran.stderr);
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
        assert!(ran.stderr.contains("no ranges to block"), "{}", ran.stderr);
    }
    // Every range among the networks `report.ignore` holds: no rule would block a thing.
    s.reconfigure(&config.replace(
        "[report]\n",
        "[report]\nignore = [\"0.0.0.0/0\", \"::/0\"]\n",
    ));
    for format in ["iptables", "nft"] {
        let ran = s.run(&["firewall", "--provider", "aws", "--format", format]);
        assert_eq!(ran.code, 78, "{format}: {}{}", ran.stdout, ran.stderr);
        assert!(
            ran.stderr.contains("report.ignore holds every one"),
            "{}",
            ran.stderr
        );
    }
}

#[test]
fn a_cursor_taken_over_by_a_new_spelling_keeps_what_was_counted_for_reread() {
    let s = relative_setup();
    std::fs::create_dir(s.path("logs")).unwrap();
    std::fs::rename(s.path("messages"), s.path("logs/messages")).unwrap();
    let config = std::fs::read_to_string(s.path("config.toml")).unwrap();
    s.reconfigure(&config.replace("path = \"messages\"", "path = \"logs/messages\""));
    s.run(&["run"]).ok();
    let once = observed_hits(&s);
    // The same file, its path spelled anew (here through a link to its folder): read on from
    // the old name's cursor, nothing new to read.
    std::os::unix::fs::symlink(s.path("logs"), s.path("alias")).unwrap();
    s.reconfigure(&config.replace("path = \"messages\"", "path = \"alias/messages\""));
    let moved = s.run(&["-v", "run"]).ok();
    assert!(
        moved.stderr.contains("read on from there"),
        "{}",
        moved.stderr
    );
    // Read again under the new name: what the old name counted is not counted twice.
    let file = s.path("alias/messages");
    s.run(&["reread", "--source", file.to_str().unwrap()]).ok();
    let again = s.run(&["run"]).ok();
    assert_eq!(observed_hits(&s), once, "{}", again.stderr);
}

/// A state an older version kept, its cursor named by the source's relative path, and the log
/// rotated before the first run of this version: the rotated file is read on from that
/// cursor and the new file from its start, every packet counted once.
#[test]
fn an_older_states_relative_cursor_is_read_on_after_the_file_rotated() {
    let s = relative_setup();
    run_in(&s, s.dir.path(), "config.toml", &["run"]).ok();
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    // As the older version named it, run from the configuration's folder.
    db.execute("UPDATE cursor SET source = 'messages'", [])
        .unwrap();
    db.execute("UPDATE counted SET source = 'messages'", [])
        .unwrap();
    drop(db);
    s.append(
        "messages",
        &drop_line("23:51:28", "34.223.47.190", "UDP", 53),
    );
    std::fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    s.write(
        "messages",
        &drop_line("23:51:29", "34.223.47.190", "UDP", 53),
    );
    run_in(&s, s.dir.path(), "config.toml", &["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get("34.223.47.190"), Some(&4), "{hits:?}");
    assert_eq!(hits.get("3.5.140.2"), Some(&1), "{hits:?}");
}

/// `--config` spelt with `..` (from a folder beside the configuration's) names the sources
/// as the absolute spelling does: one cursor, so that the timer's run after a rotation reads
/// on from where the run by hand stopped, counting nothing twice.
#[test]
fn a_config_spelt_with_dot_dot_names_its_sources_as_an_absolute_one_does() {
    let s = relative_setup();
    let beside = s.path("beside");
    std::fs::create_dir(&beside).unwrap();
    run_in(&s, &beside, "../config.toml", &["run"]).ok();
    s.append(
        "messages",
        &drop_line("23:51:28", "34.223.47.190", "UDP", 53),
    );
    std::fs::rename(s.path("messages"), s.path("messages.1")).unwrap();
    s.write(
        "messages",
        &drop_line("23:51:29", "34.223.47.190", "UDP", 53),
    );
    s.run(&["run"]).ok();
    let hits = observed_hits(&s);
    assert_eq!(hits.get("34.223.47.190"), Some(&4), "{hits:?}");
    let db = rusqlite::Connection::open(s.path("state/state.db")).unwrap();
    let names: Vec<String> = db
        .prepare("SELECT source FROM cursor")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(names, [s.path("messages").to_str().unwrap()]);
}
