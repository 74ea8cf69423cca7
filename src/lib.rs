//! vnetgen: a YAML profile of a libvirt/QEMU host → a complete, reproducible setup bundle.
//!
//! The pipeline (see ARCHITECTURE.md): `profile` (YAML → raw structs) → `lower` (raw → validated
//! `model`, every problem collected) → `render` (model → `bundle::Bundle`, pure) →
//! `bundle::Bundle::write_to` (the only code that writes). `main.rs` is the only code that prints.

pub mod builtin;
pub mod bundle;
pub mod diag;
pub mod init;
pub mod lower;
pub mod model;
pub mod profile;
pub mod render;
pub mod templates;

use diag::Diagnostic;

/// A profile read and checked: the model when it is valid, and every diagnostic (warnings
/// included) either way.
pub struct Checked {
    pub model: Option<model::Profile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and lowers a profile's bytes. Never panics on any input.
///
/// Every problem at once: structural errors (each key-level one set aside, see `profile::parse`)
/// and, as long as the rest of the document still reads, every semantic error `lower` finds in
/// it, in the order of the source.
///
/// A value written as the literal `TODO` (what `vnetgen init` writes where it could not detect a
/// value) is an error of its own, and the errors it causes on its line are not reported again.
pub fn check(bytes: &[u8]) -> Checked {
    let checked = check_values(bytes);
    let todos = std::str::from_utf8(bytes).map(profile::todos).unwrap_or_default();
    if todos.is_empty() {
        return checked;
    }
    let mut diagnostics = checked.diagnostics;
    diagnostics.retain(|d| !todos.iter().any(|t| t.loc.line == d.loc.line));
    diagnostics.extend(todos);
    diagnostics.sort_by_key(|d| d.loc);
    Checked { model: None, diagnostics }
}

fn check_values(bytes: &[u8]) -> Checked {
    let parsed = profile::parse(bytes);
    let Some(raw) = parsed.profile else {
        return Checked { model: None, diagnostics: parsed.errors };
    };
    let (model, lowered) = lower::lower(&raw);
    if parsed.errors.is_empty() {
        return Checked { model, diagnostics: lowered };
    }
    let mut diagnostics = parsed.errors;
    diagnostics.extend(lowered);
    diagnostics.sort_by_key(|d| d.loc);
    Checked { model: None, diagnostics }
}

/// The resolved profile as YAML: every default filled in (`vnetgen show`, the bundle's
/// `profile.yaml`).
pub fn resolved_yaml(model: &model::Profile) -> String {
    let mut out = String::from("# Resolved by vnetgen: every default is written out.\n");
    out.push_str(&profile::to_yaml(&lower::raise(model)));
    out
}

/// The resolved profile as JSON (`vnetgen show --format json`): the same document as
/// `resolved_yaml`, every default filled in.
pub fn resolved_json(model: &model::Profile) -> String {
    let mut s = serde_json::to_string_pretty(&lower::raise(model)).expect("a profile serializes");
    s.push('\n');
    s
}

/// Renders the bundle of a valid profile.
pub fn render_bundle(model: &model::Profile, templates: &templates::Templates) -> anyhow::Result<bundle::Bundle> {
    render::render(model, templates, &resolved_yaml(model))
}

/// The JSON Schema of the profile format, pretty-printed.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(profile::Profile);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}
