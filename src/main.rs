//! The `scim-gate` binary: everything lives in the library; this only hands over to its CLI.

/// With the feature `mimalloc`: fewer instructions per request than glibc's malloc, more
/// resident memory with large token sets (BENCHMARKS.md, "Allocator"). The library leaves the
/// choice to whoever builds a binary.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "mimalloc")]
unsafe extern "C" {
    /// mimalloc's own call (linked in with the allocator): frees what the calling thread's
    /// heap holds unused, and with `force` returns it to the OS at once.
    fn mi_collect(force: bool);
}

fn main() -> std::process::ExitCode {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect has no preconditions; it only touches mimalloc's own state.
    scim_gate::tokens::set_memory_release(|| unsafe { mi_collect(true) });
    scim_gate::cli::main()
}
