//! The `scim-gate` binary: everything lives in the library; this only hands over to its CLI.

/// mimalloc rather than glibc's malloc: Pingora frees request buffers on other threads than
/// the ones that allocated them (BENCHMARKS.md, "Allocator"). The library leaves the choice to
/// whoever builds a binary.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    scim_gate::cli::main()
}
