//! Shared by the integration tests (each test crate uses a part of it).

#![allow(dead_code)]

use std::time::{Duration, Instant};

pub mod receiver;
pub mod tokwatch;

/// Between two checks of a condition. The tests wait on a condition with a
/// deadline ([`until`]); what they wait for (a child process exiting, an
/// HTTP endpoint answering, a line in a log file, a scrape's sums) offers
/// nothing to block on, so the condition is checked again after this.
const RECHECK: Duration = Duration::from_millis(25);

/// Checks `check` until it gives a value; past `within`, its last error.
///
/// # Errors
/// The last error of `check`, once `within` has passed.
pub fn until<T>(
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(RECHECK),
        }
    }
}
