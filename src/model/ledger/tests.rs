//! Ledger folding rules.
