//! keystore — keyraft's pure domain: no network, no disk, no tokio.
//!
//! Layout (filled in by the keystore work):
//! - `model`: replicated records; `command`: commands, queries, changes; `error`: DomainError.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod error;
pub mod model;
