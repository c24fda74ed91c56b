//! Compile errors of `#[handler]`, pinned: each mistake points at the
//! offending token with a message saying what is expected.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/handler/fail/*.rs");
    t.pass("ui/handler/pass/*.rs");
}
