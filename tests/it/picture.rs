//! The bundle's topology picture and wording: `topology.svg` of every built-in profile is
//! well-formed XML (xmllint), self-contained, and drawn by a real SVG renderer (rsvg-convert);
//! the README's text picture fits [`MAX_COLUMNS`]; and no user-facing output (bundle files,
//! schema, `list`) names the project's internal source documents.

use crate::support::{tool, TempDir};
use assert_cmd::Command;
use vnetgen::templates::Templates;

/// The widest line of the README's picture.
const MAX_COLUMNS: usize = 100;

/// Every built-in profile's bundle: (profile name, bundle).
fn builtin_bundles() -> Vec<(&'static str, vnetgen::bundle::Bundle)> {
    let templates = Templates::load(None).unwrap();
    vnetgen::builtin::PROFILES
        .iter()
        .map(|(name, _, text)| {
            let model = vnetgen::check(text.as_bytes()).model.unwrap_or_else(|| panic!("{name} is invalid"));
            (*name, vnetgen::render_bundle(&model, &templates).unwrap())
        })
        .collect()
}

fn text(bundle: &vnetgen::bundle::Bundle, path: &str) -> String {
    String::from_utf8(bundle.files[path].bytes.clone()).unwrap()
}

#[test]
fn topology_svg_is_well_formed_self_contained_and_renders() {
    let xmllint = tool("xmllint", "libxml2-utils");
    let rsvg = tool("rsvg-convert", "librsvg2-bin");
    let dir = TempDir::new("svg");
    for (name, bundle) in builtin_bundles() {
        let svg = text(&bundle, "topology.svg");
        assert!(bundle.manifest().contains(" topology.svg\n"), "{name}: MANIFEST does not list topology.svg");
        assert!(text(&bundle, "SHA256SUMS").contains("  topology.svg\n"), "{name}: SHA256SUMS misses topology.svg");
        for external in ["href", "url(", "@import", "<image", "<script", "@font-face"] {
            assert!(!svg.contains(external), "{name}: topology.svg refers outside itself ({external})");
        }
        let file = dir.path().join(format!("{name}.svg"));
        std::fs::write(&file, &svg).unwrap();
        if let Some(xmllint) = &xmllint {
            let out = std::process::Command::new(xmllint).arg("--noout").arg(&file).output().unwrap();
            assert!(out.status.success(), "{name}: xmllint: {}", String::from_utf8_lossy(&out.stderr));
        }
        if let Some(rsvg) = &rsvg {
            let png = dir.path().join(format!("{name}.png"));
            let out = std::process::Command::new(rsvg).arg(&file).arg("-o").arg(&png).output().unwrap();
            assert!(out.status.success(), "{name}: rsvg-convert: {}", String::from_utf8_lossy(&out.stderr));
            let bytes = std::fs::read(&png).unwrap();
            assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"), "{name}: rsvg-convert wrote no picture");
        }
    }
}

/// The README shows the same picture as text, within the columns of a terminal.
#[test]
fn readme_picture_is_box_drawing_text_that_fits_a_terminal() {
    for (name, bundle) in builtin_bundles() {
        let readme = text(&bundle, "README.md");
        let start = readme.find("```text\n").unwrap_or_else(|| panic!("{name}: README has no picture")) + 8;
        let picture = &readme[start..start + readme[start..].find("```\n").unwrap()];
        assert!(picture.starts_with("┌─ LAN / internet"), "{name}: picture starts {:?}", &picture[..40]);
        for line in picture.lines() {
            assert!(line.chars().count() <= MAX_COLUMNS, "{name}: picture line too wide: {line}");
        }
        let svg = text(&bundle, "topology.svg");
        // Same content: every text of the picture (boxes' titles and lines) is in the SVG.
        for line in picture.lines() {
            let words = line.trim_matches(|c: char| "│┌┐└┘├┤┬┴─ ".contains(c));
            let words = words.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            assert!(words.is_empty() || svg.contains(&words), "{name}: topology.svg lacks {words:?}");
        }
    }
}

/// Finds "seed 004"-like names of internal source documents (`/seed ?0\d\d/i`).
fn names_a_seed(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let b = lower.as_bytes();
    for (i, _) in lower.match_indices("seed") {
        let mut j = i + 4;
        if b.get(j) == Some(&b' ') {
            j += 1;
        }
        if b.get(j) == Some(&b'0')
            && b.get(j + 1).is_some_and(u8::is_ascii_digit)
            && b.get(j + 2).is_some_and(u8::is_ascii_digit)
        {
            return Some(lower[i..j + 3].to_string());
        }
    }
    None
}

#[test]
fn user_facing_output_names_no_internal_document() {
    assert_eq!(names_a_seed("as in Seed 004's shape"), Some("seed 004".to_string()));
    assert_eq!(names_a_seed("seed002"), Some("seed002".to_string()));
    assert_eq!(names_a_seed("a seed 1x, seeds 0"), None);
    let mut found = Vec::new();
    for (name, bundle) in builtin_bundles() {
        for (path, f) in &bundle.files {
            if let Some(s) = names_a_seed(&String::from_utf8_lossy(&f.bytes)) {
                found.push(format!("{name}: {path} says {s:?}"));
            }
        }
    }
    if let Some(s) = names_a_seed(&vnetgen::schema_json()) {
        found.push(format!("the schema says {s:?}"));
    }
    for format in ["text", "json"] {
        let out = Command::cargo_bin("vnetgen").unwrap().args(["list", "--format", format]).output().unwrap();
        assert!(out.status.success());
        if let Some(s) = names_a_seed(&String::from_utf8_lossy(&out.stdout)) {
            found.push(format!("`list --format {format}` says {s:?}"));
        }
    }
    assert!(found.is_empty(), "user-facing output names internal documents:\n{}", found.join("\n"));
}
