//! client — Rust SDK for keyraft.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
