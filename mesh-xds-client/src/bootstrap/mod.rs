//! Bootstrap parsing (in progress).
