//! Compile-time behaviour of `#[writer]` and `#[read_replica]`: the supported shapes compile
//! without warnings (`tests/ui/pass`), and misuse is one clear error (`tests/ui/fail`).
//!
//! Regenerate the expected errors with
//! `TRYBUILD=overwrite cargo test -p rds-balancer --test macros_ui`, then review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
