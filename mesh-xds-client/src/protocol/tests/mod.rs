//! Synchronous tests of the state machine, one file per rule family.

mod ack_nack;
mod counts;
mod deletion;
mod fallback;
mod federation;
mod proptests;
mod stream;
mod subscription;
mod support;
mod timer;
mod view;
