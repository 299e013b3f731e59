//! File descriptors: the process's open-file limit, raised at start, and the share of it client
//! connections may use.
//!
//! A client connection costs one descriptor, and one more while its request is forwarded (the
//! upstream connection). The rest of the gate — the admin socket and its clients, the token
//! file watcher, the audit log, the metrics listener, Pingora's upstream pool — must find
//! descriptors even when every client slot is taken, so [`RESERVED`] are kept for them.

use std::io;

/// Descriptors kept out of the client connections' share.
pub const RESERVED: u64 = 64;

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, as a server that
/// expects many connections should (the soft limit is often 1024); returns the limit now in
/// force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// How many client connections fit in `open_files` descriptors with [`RESERVED`] kept back,
/// two descriptors each; at most `configured`, at least 1.
pub fn connections_that_fit(configured: usize, open_files: u64) -> usize {
    let share = open_files.saturating_sub(RESERVED) / 2;
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    configured.min(share).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_the_reserve_and_two_descriptors_each() {
        assert_eq!(connections_that_fit(10_000, 1_048_576), 10_000);
        assert_eq!(connections_that_fit(10_000, 1024), (1024 - 64) / 2);
        assert_eq!(connections_that_fit(10_000, 10), 1);
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let now = raise_open_file_limit().expect("getrlimit");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((now, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
    }
}
