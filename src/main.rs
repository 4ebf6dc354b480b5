use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tokwatch::cli::Cli::parse();
    match tokwatch::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tokwatch: {error:#}");
            ExitCode::from(2)
        }
    }
}
