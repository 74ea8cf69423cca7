//! Fuzz target `check`: any bytes → `vnetgen::check`.
//!
//! - check never panics;
//! - it returns a model exactly when it reports no error, and every diagnostic of a refused
//!   profile points at a place in the document;
//! - a model survives its own resolution: `lower(raise(m)) == m` (ARCHITECTURE.md's invariant,
//!   compared by `Debug`, as the model has no `PartialEq`), and the resolved YAML (`vnetgen show`,
//!   the bundle's `profile.yaml`) checks again to the same model.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use vnetgen::diag::Diagnostic;
use vnetgen::lower;

fuzz_target!(|bytes: &[u8]| {
    let checked = vnetgen::check(bytes);
    let Some(model) = checked.model else {
        common::refused_with_located_errors(&checked.diagnostics, bytes);
        return;
    };
    let errors: Vec<&Diagnostic> = checked.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "check returns a model and errors: {errors:#?}");
    let want = format!("{model:#?}");

    let (lowered, diags) = lower::lower(&lower::raise(&model));
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "lower refuses raise(m): {errors:#?}");
    let lowered = lowered.expect("lower returns a model when it reports no error");
    same("lower(raise(m)) != m", &want, &format!("{lowered:#?}"));

    let resolved = vnetgen::resolved_yaml(&model);
    let again = vnetgen::check(resolved.as_bytes());
    let Some(again) = again.model else {
        panic!("the resolved profile is refused: {:#?}\n--- resolved profile ---\n{resolved}", again.diagnostics);
    };
    same("the resolved profile checks to another model", &want, &format!("{again:#?}"));
});

/// Panics with `what` and the first line where the two `Debug` texts of models differ.
fn same(what: &str, want: &str, got: &str) {
    if want == got {
        return;
    }
    let (i, (w, g)) = want
        .lines()
        .zip(got.lines())
        .enumerate()
        .find(|(_, (w, g))| w != g)
        .unwrap_or((want.lines().count().min(got.lines().count()), ("<end>", "<end>")));
    panic!("{what}: first difference at line {} of the model's Debug:\n  want: {w}\n  got:  {g}", i + 1);
}
