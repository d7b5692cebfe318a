//! raft — keyraft storage nodes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
