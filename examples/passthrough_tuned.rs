//! The bare passthrough with the gate's knobs, the benchmarks' second floor: the same program
//! as `passthrough.rs`, allocating with mimalloc as the `scim-gate` binary does; run it with
//! `--no-modules` (no downstream modules, as the gate) — see BENCHMARKS.md.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "passthrough.rs"]
mod passthrough;

fn main() {
    passthrough::main()
}
