use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tokwatch::cli::Cli::parse();
    match tokwatch::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // Messages quote paths and values from the command line and from
            // files: never let their control characters reach the terminal.
            let text = format!("{error:#}");
            let lines: Vec<_> = text.lines().map(tokwatch::sanitize::sanitize).collect();
            eprintln!("tokwatch: {}", lines.join("\n"));
            ExitCode::from(2)
        }
    }
}
