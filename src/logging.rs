//! Process logging: `RUST_LOG` selects the level (default `info`), and no secret reaches a log
//! line even at `trace`.

use crate::tokens::secret;

/// Installs the process logger: env_logger (`RUST_LOG`, default `info`) behind [`NoSecrets`].
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    let logger = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .build();
    let max = logger.filter();
    // A second init (tests calling in-process) is harmless.
    if log::set_boxed_logger(Box::new(NoSecrets(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// Keeps secrets out of debug output (SPEC §3). At `debug`/`trace` Pingora dumps whole request
/// headers (`pingora_proxy` "Request header: …", `proxy_h1` "Sending header to upstream …",
/// the h1 client "Writing request header …"), which would print the IdP's bearer token and the
/// upstream credential. A message from another crate that mentions an Authorization header or
/// holds a gate token is replaced by a note; the gate's own messages never carry either.
struct NoSecrets(env_logger::Logger);

const WITHHELD: &str = "[message withheld: it contained an Authorization header or a token]";

fn may_hold_a_secret(record: &log::Record<'_>) -> bool {
    if record.target().starts_with("scim_gate") || record.target() == "access" {
        return false;
    }
    let text = record.args().to_string().to_ascii_lowercase();
    text.contains("authorization") || text.contains(secret::PREFIX)
}

impl log::Log for NoSecrets {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.0.enabled(record.metadata()) {
            return;
        }
        if may_hold_a_secret(record) {
            self.0.log(
                &log::Record::builder()
                    .args(format_args!("{WITHHELD}"))
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        } else {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
