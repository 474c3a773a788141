//! abuse-mailer: reads what is new in netfilter firewall logs, finds the attacking IPs that
//! belong to a configured cloud provider and were not reported yet, and mails the provider's
//! abuse desk one report with the IP list and a log excerpt, recording exactly what it sent.
//!
//! The stages are modules, in the order a run calls them (`app` alone knows that order):
//! `source` → `parse` → `ingest` → `state` → `select` → `enrich` → `excerpt` → `render` →
//! `send`, with `config`, `clock`, `provider` and `error` beside them.

pub mod app;
pub mod aws_api;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod discover;
pub mod enrich;
pub mod error;
pub mod excerpt;
pub mod firewall;
pub mod folder;
pub mod header;
pub mod http;
pub mod ingest;
pub mod intake;
pub mod journal;
pub mod ledger;
pub mod lock;
pub mod output;
pub mod overlap;
pub(crate) mod parallel;
pub mod parse;
pub mod plan;
pub mod provider;
pub mod render;
pub mod reread;
pub mod select;
pub mod send;
pub mod source;
pub mod spool;
pub mod state;
pub(crate) mod watchdog;
pub mod xarf;
