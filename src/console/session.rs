//! The one-time sign-in key and the single browser session it opens.
//!
//! `scim-gate console` prints `…/login#KEY`. The key sits in the URL *fragment*, which a browser
//! never sends to a server or in a `Referer`; the page posts it once. The first valid use spends
//! it and opens the session; any later use is refused, so a link that leaks afterwards (shell
//! history, a screen share) opens nothing. Only the keys' SHA-256 digests are kept, and compared
//! digest to digest, so the comparison time says nothing about the key (see the README's
//! "Why hash-then-lookup leaks nothing through timing").
//!
//! Because the key opens exactly one session, the console has at most one: a small state behind a
//! mutex. The console is not the gate's request path; the lock is held for a few comparisons.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use rand::RngCore;

use crate::tokens::secret::{sha256, to_hex};

/// A session unused this long is closed: a console left open overnight signs itself out.
pub const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);

/// Why a sign-in was refused; the messages are shown to the admin as they are.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error(
        "this sign-in link has already been used; run `scim-gate console` again for a new one"
    )]
    Spent,
    #[error("this is not the sign-in key that `scim-gate console` printed")]
    WrongKey,
}

/// A new random value in hex: 32 bytes from the OS RNG.
fn random_hex() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    to_hex(&raw)
}

struct Session {
    id_digest: [u8; 32],
    csrf_digest: [u8; 32],
    last_seen: Instant,
}

struct State {
    /// The unused key's digest; `None` once spent.
    key_digest: Option<[u8; 32]>,
    session: Option<Session>,
}

/// What a successful sign-in hands the browser: the cookie value and the CSRF token.
pub struct Opened {
    pub session_id: String,
    pub csrf: String,
}

/// The key, the session and its CSRF token.
pub struct Sessions {
    state: Mutex<State>,
}

impl Sessions {
    /// A fresh key (returned once, for the printed link) and no session yet.
    pub fn new() -> (Sessions, String) {
        let key = random_hex();
        let sessions = Sessions {
            state: Mutex::new(State {
                key_digest: Some(sha256(key.as_bytes())),
                session: None,
            }),
        };
        (sessions, key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (each write is
        // one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spends the key and opens the session. A wrong key leaves the right one unspent (it cannot
    /// be guessed: 256 bits), so a typo does not lock the admin out.
    pub fn sign_in(&self, key: &str) -> Result<Opened, SignInError> {
        let mut st = self.lock();
        let Some(want) = st.key_digest else {
            return Err(SignInError::Spent);
        };
        if sha256(key.as_bytes()) != want {
            return Err(SignInError::WrongKey);
        }
        st.key_digest = None;
        let session_id = random_hex();
        let csrf = random_hex();
        st.session = Some(Session {
            id_digest: sha256(session_id.as_bytes()),
            csrf_digest: sha256(csrf.as_bytes()),
            last_seen: Instant::now(),
        });
        Ok(Opened { session_id, csrf })
    }

    /// Whether the cookie value names the open session (and keeps it alive). An idle session is
    /// closed here rather than by a timer.
    pub fn check(&self, session_id: &str) -> bool {
        let mut st = self.lock();
        let digest = sha256(session_id.as_bytes());
        match &mut st.session {
            Some(s) if s.last_seen.elapsed() > IDLE_LIMIT => {
                st.session = None;
                false
            }
            Some(s) if s.id_digest == digest => {
                s.last_seen = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Whether `csrf` is the open session's CSRF token.
    pub fn csrf_ok(&self, csrf: &str) -> bool {
        let st = self.lock();
        st.session
            .as_ref()
            .is_some_and(|s| s.csrf_digest == sha256(csrf.as_bytes()))
    }

    /// A new CSRF token for the open session, for a page reloaded after sign-in (the token lives
    /// only in page memory, so a reload must be able to get one). `None` without a session.
    pub fn rotate_csrf(&self) -> Option<String> {
        let mut st = self.lock();
        let s = st.session.as_mut()?;
        let csrf = random_hex();
        s.csrf_digest = sha256(csrf.as_bytes());
        Some(csrf)
    }

    /// Signs out: the session closes and, the key being spent, nothing can open another.
    pub fn close(&self) {
        self.lock().session = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_works_once() {
        let (s, key) = Sessions::new();
        assert_eq!(s.sign_in("nope").err(), Some(SignInError::WrongKey));
        let opened = s.sign_in(&key).expect("first use");
        assert_eq!(s.sign_in(&key).err(), Some(SignInError::Spent));
        assert!(s.check(&opened.session_id));
        assert!(!s.check(&key));
        assert!(s.csrf_ok(&opened.csrf));
        assert!(!s.csrf_ok(""));
        assert!(!s.csrf_ok(&opened.session_id));
    }

    #[test]
    fn rotating_the_csrf_token_retires_the_old_one_and_close_ends_everything() {
        let (s, key) = Sessions::new();
        assert!(s.rotate_csrf().is_none());
        let opened = s.sign_in(&key).expect("sign in");
        let fresh = s.rotate_csrf().expect("session open");
        assert!(!s.csrf_ok(&opened.csrf));
        assert!(s.csrf_ok(&fresh));
        s.close();
        assert!(!s.check(&opened.session_id));
        assert!(!s.csrf_ok(&fresh));
        assert_eq!(s.sign_in(&key).err(), Some(SignInError::Spent));
    }
}
