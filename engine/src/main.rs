//! The `play` binary: parse the command line, run, map the result to Ansible's exit codes.

use std::process::ExitCode;

use engine::cli::Command;

fn main() -> ExitCode {
    let command = match Command::parse(std::env::args_os()) {
        Ok(command) => command,
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
    let result = match command {
        Command::Run(cli) => engine::app::run(*cli),
        Command::Graph(graph) => engine::app::graph(graph),
        Command::Vault(vault) => engine::vault_cli::run(vault),
        Command::Modules(list) => engine::app::modules(list),
    };
    let code = match result {
        Ok(code) => code,
        Err(diag) => {
            eprint!("{}", engine::vault::redact(&diag.render()));
            diag.code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
