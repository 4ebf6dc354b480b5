//! Logs go to a file, never to the screen: the dashboard owns the terminal.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing_appender::non_blocking::WorkerGuard;

/// The default log file: `$XDG_STATE_HOME/tokwatch/tokwatch.log`
/// (`~/.local/state/tokwatch/tokwatch.log`).
#[must_use]
pub fn default_log_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(state.join("tokwatch").join("tokwatch.log"))
}

/// Sends `tracing` output to `path` (or the default file); the filter comes
/// from `TOKWATCH_LOG`, else `RUST_LOG`, else `info`. Keep the guard alive
/// until exit so the last lines are written.
///
/// # Errors
/// The log directory cannot be created.
pub fn init_file(path: Option<&Path>) -> anyhow::Result<Option<WorkerGuard>> {
    let Some(path) = path.map(Path::to_path_buf).or_else(default_log_file) else {
        return Ok(None);
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the log directory '{}'", dir.display()))?;
    let name = path
        .file_name()
        .map_or_else(|| "tokwatch.log".into(), |n| n.to_os_string());
    // Logs may name files and runs: create the file private before the
    // appender opens it (it keeps an existing file's mode).
    {
        use std::os::unix::fs::OpenOptionsExt;
        let file = dir.join(&name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("cannot open the log file '{}'", file.display()))?;
    }
    let (writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::never(dir, name));
    let filter = std::env::var("TOKWATCH_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .finish();
    // A second initialization (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(Some(guard))
}

/// Logs panics to the log file, then runs the previous hook. Install it
/// before the terminal is set up: ratatui's own hook, installed after, then
/// restores the terminal first, so the message lands on a usable screen.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, backtrace = %std::backtrace::Backtrace::force_capture(), "panic");
        previous(info);
    }));
}
