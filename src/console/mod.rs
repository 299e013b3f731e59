//! `scim-gate console`: a web console for admins, served on loopback, that talks to the admin
//! socket. Its design and security model are in docs/console.md.
//!
//! One file per concern: [`settings`] (options, loopback-only listen, the SCIM URL to show),
//! [`session`] (the one-time sign-in key, the session, the CSRF token), [`server`] (the HTTP
//! server and its security headers), [`admin_proxy`] (the admin routes the page may call) and
//! [`assets`] (the page, compiled in).

pub mod admin_proxy;
pub mod assets;
pub mod server;
pub mod session;
pub mod settings;

use std::io::Write;
use std::process::ExitCode;

pub use settings::{ConsoleOptions, Settings, SettingsError};

/// Runs the console until SIGINT or SIGTERM. Exit status: 0 after a signal, 1 when it cannot
/// listen, 2 for a refused option (a non-loopback `--listen` among them).
pub fn run(opts: &ConsoleOptions) -> ExitCode {
    let settings = match Settings::resolve(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scim-gate console: {e}");
            let usage = matches!(
                e,
                SettingsError::BadListen(_)
                    | SettingsError::NotLoopback(_)
                    | SettingsError::NoSocket
                    | SettingsError::BadScimUrl(_)
            );
            return ExitCode::from(if usage { 2 } else { 1 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scim-gate console: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let console = match server::Console::bind(settings).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("scim-gate console: {e}");
                return ExitCode::from(1);
            }
        };
        // The one line an admin (or a script) reads; the key in it is spent on first use.
        println!("console: {}", console.login_url());
        let _ = std::io::stdout().flush();
        console.serve_until_signal().await;
        ExitCode::SUCCESS
    })
}
