//! Input formats: pure decoders from a line's bytes to normalized events.

pub mod native;
