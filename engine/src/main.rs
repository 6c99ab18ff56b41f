//! The `play` binary: parse the command line, run, map the result to Ansible's exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match engine::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                engine::error::exit::BAD_OPTIONS
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match engine::app::run(cli) {
        Ok(code) => code,
        Err(diag) => {
            eprint!("{}", diag.render());
            diag.code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
