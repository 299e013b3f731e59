//! # scim-gate
//!
//! A SCIM 2.0 token gate on Pingora. It sits in front of an existing SCIM directory and, for
//! every request an identity provider sends, (1) authenticates the bearer token against a
//! hot-reloaded set of SHA-256 hashes, (2) checks the body against the SCIM schema and the
//! operator's attribute-update policy, and (3) forwards what passes. Admins manage tokens over a
//! local Unix socket. The reference is `docs/` (docs/README.md); the README says how to run it.
//!
//! The public API is what an embedder and the binary use: [`GatedProxy`] (the `ProxyHttp` that
//! runs every gate step around an operator's [`Embedder`]), [`Gate`] and [`GateCtx`], the
//! configuration ([`config`], [`Config`]), the token store ([`tokens`]), the SCIM checks
//! ([`scim`], a pure two-phase API) and the command line ([`cli`], which `main.rs` calls). The
//! rest — authentication, routes, the request path by phase, the upstream, the admin socket and
//! its client, audit, metrics, logging, the console and the server assembly — is internal, one
//! module per concern (README: "Where things live"). The in-memory directory behind
//! `scim-gate demo` and the tests is its own crate, `scim-demo` (`crates/scim-demo`).

#![warn(missing_docs)]

mod admin;
mod audit;
mod auth;
pub mod cli;
mod client;
pub mod config;
mod connections;
mod console;
mod decisions;
mod demo_cmd;
mod error;
mod gate;
mod guards;
mod logging;
mod metrics;
pub mod net;
mod proxy;
mod routes;
pub mod scim;
mod server;
pub mod tokens;
mod upstream;

pub use config::Config;
pub use gate::{Gate, GateCtx};
pub use proxy::{DefaultEmbedder, Embedder, GateProxy, GatedCtx, GatedProxy};
pub use server::{StartError, TokenFollower};
