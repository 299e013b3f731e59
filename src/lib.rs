//! # scim-gate
//!
//! A SCIM 2.0 token gate on Pingora. It sits in front of an existing SCIM directory and, for
//! every request an identity provider sends, (1) authenticates the bearer token against a
//! hot-reloaded set of SHA-256 hashes, (2) checks the body against the SCIM schema and the
//! operator's attribute-update policy, and (3) forwards what passes. Admins manage tokens over a
//! local Unix socket. The reference is `docs/` (docs/README.md); the README says how to run it.
//!
//! The binary is a thin shell over this library: [`server::build`] assembles exactly what an
//! operator could assemble themselves, and [`gate::Gate`] is the piece an existing Pingora proxy
//! embeds (see `examples/embed.rs`).
//!
//! Modules, one concern each: [`config`], [`tokens`], [`auth`], [`routes`], [`scim`] (schema,
//! paths, policy, dialects), [`gate`] and [`proxy`] (the request path), [`upstream`], [`admin`]
//! and [`client`] (the socket and its CLI client), [`audit`], [`metrics`], and [`server`]. The
//! in-memory directory behind `scim-gate demo` and the tests is its own crate, `scim-demo`
//! (`crates/scim-demo`), and not part of this library's API.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
mod demo_cmd;
pub mod error;
pub mod gate;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod scim;
pub mod server;
pub mod tokens;
pub mod upstream;

pub use config::Config;
pub use gate::{Gate, GateCtx};
pub use proxy::{DefaultEmbedder, Embedder, GateProxy, GatedCtx, GatedProxy};
pub use server::StartError;
