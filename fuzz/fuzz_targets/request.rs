//! Whole requests — head and body, any bytes — through the gate's proxy app in-process (the
//! same `HttpProxy<GateProxy>` the binary serves), with `$TOKEN` in the input standing for a
//! valid token. Must never panic or hang; every answer is an HTTP answer or nothing, and never
//! echoes the token. Seeds: `tests/fixtures/requests/`. The driver is shared with the stable
//! twin in the test suite (`tests/it/fuzz_requests.rs`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/harness/in_process.rs"]
mod in_process;

use in_process::{check_answer, InProcess};

fn gate() -> &'static InProcess {
    static GATE: OnceLock<InProcess> = OnceLock::new();
    // Port 9 (discard): nothing listens, so a request that passes every check gets 502.
    GATE.get_or_init(|| InProcess::new("http://127.0.0.1:9/v2"))
}

fuzz_target!(|data: &[u8]| {
    let gate = gate();
    let answer = gate.answer(data);
    check_answer(&gate.token, data, &answer);
});
