//! The terminal dashboard.

pub mod theme;
