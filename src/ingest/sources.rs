//! Input sources: where lines come from (files read once, followed files,
//! sockets, standard input), apart from what their lines mean (`formats`).

pub mod files;
pub mod socket;
pub mod stdin;
pub mod tail;
