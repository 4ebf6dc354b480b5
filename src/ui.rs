//! The terminal dashboard: one task owns the terminal (`app`), intent is
//! data (`update` turns inputs into view state and effects), rendering is
//! pure (`views`), and what is shown comes from published snapshots (`data`).

pub mod app;
pub mod budgets;
pub mod data;
pub mod format;
pub mod state;
pub mod theme;
pub mod update;
pub mod views;
