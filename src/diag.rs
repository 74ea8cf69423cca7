//! Diagnostics: a problem in a profile, with the place it is about, rendered the way cargo and
//! netplan render YAML errors (`file:line:col: error: message`, the source line, a caret, `help:`).
//!
//! This module formats; it never prints. `main.rs` decides where the text goes.

use std::fmt::Write as _;

/// A place in the profile source: 1-based line and column (in characters), and the length of the
/// token in characters (0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Loc {
    pub fn new(line: u32, col: u32, len: u32) -> Loc {
        Loc { line, col, len }
    }

    /// Returns true if this location points at real source text.
    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, loc, message: message.into(), help: None }
    }

    pub fn warning(loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, loc, message: message.into(), help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Returns true if this diagnostic makes the profile invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic against the profile's source text.
    pub fn render(&self, file: &str, source: &str) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = String::new();
        let Loc { line, col, len } = self.loc;
        let _ = writeln!(out, "{file}:{line}:{col}: {kind}: {}", self.message);
        if let Some(text) = source_line(source, line) {
            let num = line.to_string();
            let pad = " ".repeat(num.len());
            let shown: String = text.chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
            let width = shown.chars().count() as u32;
            let start = col.max(1);
            let carets = len.max(1).min(width.saturating_sub(start - 1).max(1));
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {shown}");
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat((start - 1) as usize), "^".repeat(carets as usize));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "help: {help}");
        }
        out
    }
}

/// The text of 1-based line `line`, or None when the source has no such line (or it is too long
/// to be worth showing).
fn source_line(source: &str, line: u32) -> Option<&str> {
    if line == 0 {
        return None;
    }
    let text = source.lines().nth((line - 1) as usize)?;
    if text.len() > 300 {
        return None;
    }
    Some(text)
}

/// Renders every diagnostic, errors and warnings in source order, followed by a summary line.
pub fn render_all(diags: &[Diagnostic], file: &str, source: &str) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| (d.loc, d.severity));
    let mut out = String::new();
    for d in &sorted {
        out.push_str(&d.render(file, source));
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let plural = if errors == 1 { "" } else { "s" };
        let _ = writeln!(out, "error: {file} is not a valid profile ({errors} error{plural})");
    }
    out
}
