//! The `abuse-mailer` binary: parses the command line and hands it to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match abuse_mailer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error is "other error" (1).
            let code = if e.use_stderr() {
                abuse_mailer::error::EXIT_ERROR
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(abuse_mailer::app::main(cli))
}
