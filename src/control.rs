//! Budget control: the protocol spoken with agent runtimes, the client that
//! pushes the desired state to them, and its persisted store.

pub mod protocol;
