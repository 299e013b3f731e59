//! The integration tests: one binary (one link instead of one per file) that drives the real
//! `scim-gate` binary, and for embedding the library, in front of the in-process demo directory
//! (`crates/scim-demo`) or an upstream a test builds itself. One module per area; the shared
//! harness (starting the gate, raw HTTP, admin socket, metrics) is `harness/`.

mod harness;

mod admin;
mod auth;
mod bulk;
mod checks;
mod cli;
#[cfg(feature = "etcd")]
mod cluster;
mod connections;
mod console;
mod embed;
mod fuzz_requests;
mod guards;
mod lifecycle;
mod oauth;
mod reliability_logs;
mod reliability_tenants;
mod reload;
mod robustness;
mod routing;
mod smoke;
mod tls;
mod upgrade;
mod upstream;
mod visibility;
