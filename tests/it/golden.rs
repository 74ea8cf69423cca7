//! Golden bundles: every case's rendered bundle must equal `tests/golden/<case>/bundle/` file for
//! file and byte for byte (exact modes through MANIFEST, the executable bit on disk). All
//! differences are listed before failing; `SNAPSHOTS=overwrite cargo test` rewrites the
//! expectations (review the diff like code).

use crate::support::{files_below, golden_cases, overwrite};
use std::os::unix::fs::PermissionsExt as _;
use vnetgen::templates::Templates;

#[test]
fn golden_bundles_match() {
    let templates = Templates::load(None).unwrap();
    let mut problems = Vec::new();
    for (name, input, expected_dir) in golden_cases() {
        let bytes = std::fs::read(&input).unwrap();
        let checked = vnetgen::check(&bytes);
        let Some(model) = checked.model else {
            problems.push(format!("{name}: profile is invalid: {:?}", checked.diagnostics));
            continue;
        };
        let bundle = vnetgen::render_bundle(&model, &templates).unwrap();
        if overwrite() {
            let _ = std::fs::remove_dir_all(&expected_dir);
            bundle.write_to(&expected_dir, true).unwrap();
            continue;
        }
        let expected = files_below(&expected_dir);
        for path in &expected {
            if !bundle.files.contains_key(path) {
                problems.push(format!("{name}: missing file {path}"));
            }
        }
        for (path, file) in &bundle.files {
            let on_disk = expected_dir.join(path);
            if !expected.contains(path) {
                problems.push(format!("{name}: extra file {path}"));
                continue;
            }
            let want = std::fs::read(&on_disk).unwrap();
            if want != file.bytes {
                problems.push(format!("{name}: {path} differs:\n{}", diff(&want, &file.bytes)));
            }
            // Git keeps only the executable bit, so that is what the expected tree can show; the
            // exact mode of every file is in MANIFEST, which is compared byte for byte above.
            let mode = std::fs::metadata(&on_disk).unwrap().permissions().mode();
            if (mode & 0o111 != 0) != (file.mode & 0o111 != 0) {
                problems.push(format!(
                    "{name}: {path} has mode {:o}, the expected file {:o}",
                    file.mode,
                    mode & 0o7777
                ));
            }
        }
    }
    assert!(problems.is_empty(), "golden mismatches (SNAPSHOTS=overwrite rewrites them):\n\n{}", problems.join("\n\n"));
}

/// A small line diff: the first differing line and a few around it.
fn diff(want: &[u8], got: &[u8]) -> String {
    let w: Vec<&str> = std::str::from_utf8(want).unwrap_or("<binary>").lines().collect();
    let g: Vec<&str> = std::str::from_utf8(got).unwrap_or("<binary>").lines().collect();
    let first = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
    let mut out = String::new();
    for i in first..(first + 5) {
        if let Some(l) = w.get(i) {
            out.push_str(&format!("  -{:4} {l}\n", i + 1));
        }
        if let Some(l) = g.get(i) {
            out.push_str(&format!("  +{:4} {l}\n", i + 1));
        }
    }
    out
}
