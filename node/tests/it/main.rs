//! All node integration tests in one binary: one link instead of fourteen, shared dev-region helpers in `common`.

mod audit_cli;
mod audit_durability;
mod audit_events;
mod aws_sdk_kms;
mod common;
mod envelope;
mod front_basic;
mod iam;
mod import;
mod key_types;
mod kmsctl;
mod kmsctl_access;
mod last_usage;
mod multi_region;
mod rotation;
mod rust_sdk;
mod rust_sdk_access;
mod rust_sdk_import;
mod rust_sdk_key_types;
mod separate_roles;
mod two_region_roles;
