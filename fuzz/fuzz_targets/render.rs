//! Fuzz target `render`: any bytes → `vnetgen::check` → `vnetgen::render_bundle`.
//!
//! - check accepts ⇔ render succeeds: a model always renders, and a refused profile has an error
//!   and every diagnostic points at a place in the document (`Loc::is_known`, inside the text);
//! - render is deterministic: checking and rendering the same bytes again gives the same bundle,
//!   byte for byte;
//! - no bundle path is both a file and another path's directory (`write_to` could not write it).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vnetgen::bundle::Bundle;
use vnetgen::templates::Templates;

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| Templates::load(None).expect("the built-in templates load"))
}

fn render(bytes: &[u8]) -> Option<Bundle> {
    let checked = vnetgen::check(bytes);
    let Some(model) = checked.model else {
        common::refused_with_located_errors(&checked.diagnostics, bytes);
        return None;
    };
    match vnetgen::render_bundle(&model, templates()) {
        Ok(bundle) => Some(bundle),
        Err(e) => panic!("render fails on a profile check accepts: {e:#}"),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(bundle) = render(bytes) else { return };
    let again = render(bytes).expect("the same bytes check again");
    if again != bundle {
        let paths: std::collections::BTreeSet<&String> = bundle.files.keys().chain(again.files.keys()).collect();
        let differ: Vec<&String> = paths.into_iter().filter(|p| bundle.files.get(*p) != again.files.get(*p)).collect();
        panic!("render is not deterministic: files differ: {differ:?}");
    }
    for path in bundle.files.keys() {
        if let Some(dir) = path.match_indices('/').map(|(i, _)| &path[..i]).find(|d| bundle.files.contains_key(*d)) {
            panic!("{dir} is a bundle file, and {path} puts it in a directory");
        }
    }
});
