//! The ADS protocol state machine (in progress).
