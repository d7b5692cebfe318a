//! node — the keyraft binary's library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
