//! Compile tests of `#[feature_flag]`: correct uses build (and behave, in
//! `ui/pass`), each misuse fails with its message (`ui/fail/*.stderr`).

#[test]
fn feature_flag_attribute() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
