//! The one integration test binary. Pipeline scenarios run in-process on both backends; the
//! front-end suites start the real `otpgate` binary and talk to it as a NAS would.

// Test modules share helpers with `pub`; the crate-level lint is about the library API.
#![allow(unreachable_pub)]
// Helpers here are test code although they are not `#[test]` functions: a fixture that cannot
// be built should stop the test loudly (clippy.toml relaxes the same lints inside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_listing;
mod blackhole;
mod challenge;
mod cli;
mod cluster;
mod daemon;
mod durability;
mod event_engine;
mod events;
mod harness;
mod import;
mod ldap;
mod ldap_proxy;
mod login_index;
mod mariadb;
mod methods;
mod outage;
mod pg;
mod pi_api;
mod pi_import;
mod policies;
mod radius;
mod radsec;
mod recipes;
mod reliability;
mod scenarios;
mod sinks;
mod slapd;
mod sql_resolver;
mod sqlite_stall;
mod systemd;
