//! `tokwatch demo`: a simulated multi-agent runtime that obeys budgets.
//! (Being built: see the demo runtime task.)

use crate::cli::DemoArgs;

/// Runs the demo.
///
/// # Errors
/// Always, until the simulated runtime lands.
pub fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("tokwatch demo is not available in this build yet")
}
