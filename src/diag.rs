//! Diagnostics: a problem in a profile, with the place it is about, rendered the way rustc and
//! cargo render theirs (`annotate-snippets`): `error: message`, ` --> file:line:col`, the source
//! line with a caret under the exact span, the other places the problem involves (the earlier
//! item of a clash) as labelled secondary spans, then `= help:`.
//!
//! This module formats; it never prints. `main.rs` decides where the text goes and whether it is
//! coloured (`use_color`).

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use std::ffi::OsString;

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

/// Another place a diagnostic is about, e.g. the first of two forwards of one host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    pub loc: Loc,
    /// What is there, e.g. "first forwarded here".
    pub label: String,
}

/// One problem found in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    pub message: String,
    pub help: Option<String>,
    /// The other places the problem involves, shown as secondary spans.
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn error(loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, loc, message: message.into(), help: None, related: Vec::new() }
    }

    pub fn warning(loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, loc, message: message.into(), help: None, related: Vec::new() }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds another place the problem involves; an unknown location is left out.
    pub fn with_related(mut self, loc: Loc, label: impl Into<String>) -> Diagnostic {
        if loc.is_known() {
            self.related.push(Related { loc, label: label.into() });
        }
        self
    }

    /// Returns true if this diagnostic makes the profile invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic against the profile's source text, with ANSI colours if `color`.
    pub fn render(&self, file: &str, source: &str, color: bool) -> String {
        let level = match self.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let title = level.primary_title(self.message.as_str());
        let mut group = match self.snippet(file, source) {
            Some(snippet) => Group::with_title(title).element(snippet),
            None => {
                let mut origin = Origin::path(file);
                if self.loc.is_known() {
                    origin = origin.line(self.loc.line as usize).char_column(self.loc.col.max(1) as usize);
                }
                Group::with_title(title).element(origin)
            }
        };
        if let Some(help) = &self.help {
            // A help line may quote the profile: no control character reaches the terminal.
            group = group.element(Level::HELP.message(annotate_snippets::normalize_untrusted_str(help)));
        }
        let mut out = renderer(color).render(&[group]);
        out.push('\n');
        out
    }

    /// The source lines from the first to the last place this diagnostic is about, the primary
    /// span and every related one annotated; None when its line is unknown or too long to show.
    fn snippet<'a>(&'a self, file: &'a str, source: &'a str) -> Option<Snippet<'a, annotate_snippets::Annotation<'a>>> {
        let lines = Lines::new(source);
        let primary = lines.span(self.loc)?;
        let related: Vec<_> = self.related.iter().filter_map(|r| Some((lines.span(r.loc)?, r))).collect();
        let first = related.iter().map(|(_, r)| r.loc.line).fold(self.loc.line, u32::min);
        let last = related.iter().map(|(_, r)| r.loc.line).fold(self.loc.line, u32::max);
        let (from, to) = (lines.start(first), lines.end(last));
        let shift = |s: std::ops::Range<usize>| s.start - from..s.end - from;
        let mut snippet = Snippet::source(&source[from..to])
            .line_start(first as usize)
            .path(file)
            .annotation(AnnotationKind::Primary.span(shift(primary)));
        for (span, r) in related {
            snippet = snippet.annotation(AnnotationKind::Context.span(shift(span)).label(r.label.as_str()));
        }
        Some(snippet)
    }
}

/// The annotate-snippets renderer: rustc's ASCII decorations, coloured or plain.
fn renderer(color: bool) -> Renderer {
    if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
}

/// Longest source line shown, in bytes: a longer one is not worth printing.
const MAX_SHOWN_LINE: usize = 300;

/// Where the source's lines start and end (as `str::lines` splits them: LF or CRLF), to turn a
/// `Loc` into a byte span.
struct Lines<'a> {
    source: &'a str,
    /// Byte offset of each line's start.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(source: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        if source.ends_with('\n') {
            starts.pop();
        }
        Lines { source, starts }
    }

    /// Byte offset where 1-based line `line` starts.
    fn start(&self, line: u32) -> usize {
        self.starts[line as usize - 1]
    }

    /// Byte offset where 1-based line `line` ends (before its LF or CRLF).
    fn end(&self, line: u32) -> usize {
        let next = self.starts.get(line as usize).copied().unwrap_or(self.source.len());
        let text = &self.source[self.start(line)..next];
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        self.start(line) + text.len()
    }

    /// The byte span of `loc`, kept on its line: at least one character wide where the line has
    /// one. None when the line does not exist or is too long to show.
    fn span(&self, loc: Loc) -> Option<std::ops::Range<usize>> {
        if loc.line == 0 || loc.line as usize > self.starts.len() {
            return None;
        }
        let (start, end) = (self.start(loc.line), self.end(loc.line));
        let text = &self.source[start..end];
        if text.len() > MAX_SHOWN_LINE {
            return None;
        }
        let at = |chars: u32| text.char_indices().nth(chars as usize).map_or(text.len(), |(i, _)| i);
        let from = at(loc.col.max(1) - 1);
        let to = at(loc.col.max(1) - 1 + loc.len.max(1));
        Some(start + from..start + to.max(from))
    }
}

/// Renders every diagnostic, errors and warnings in source order, followed by a summary line.
pub fn render_all(diags: &[Diagnostic], file: &str, source: &str) -> String {
    render_all_in(diags, file, source, false)
}

/// `render_all` with ANSI colours, for a terminal (see `use_color`).
pub fn render_all_colored(diags: &[Diagnostic], file: &str, source: &str) -> String {
    render_all_in(diags, file, source, true)
}

fn render_all_in(diags: &[Diagnostic], file: &str, source: &str, color: bool) -> String {
    let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
    sorted.sort_by_key(|d| (d.loc, d.severity));
    let mut out = String::new();
    for d in &sorted {
        out.push_str(&d.render(file, source, color));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let plural = if errors == 1 { "" } else { "s" };
        let summary = format!("{file} is not a valid profile ({errors} error{plural})");
        out.push_str(&renderer(color).render(&[Group::with_title(Level::ERROR.primary_title(summary))]));
        out.push('\n');
    }
    out
}

/// Returns true if diagnostics written to a stream should be coloured, by the conventions of
/// no-color.org and bixense.com/clicolors: never when `NO_COLOR` is set and not empty; always
/// when `CLICOLOR_FORCE` is set and not `0`; never when `CLICOLOR` is `0` or `TERM` is `dumb`;
/// otherwise when the stream is a terminal. `env` reads an environment variable.
pub fn use_color(is_terminal: bool, env: impl Fn(&str) -> Option<OsString>) -> bool {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    if set("CLICOLOR").is_some_and(|v| v == "0") || set("TERM").is_some_and(|v| v == "dumb") {
        return false;
    }
    is_terminal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_color(is_terminal: bool, vars: &[(&str, &str)], expect: bool) {
        let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v));
        assert_eq!(use_color(is_terminal, env), expect, "tty {is_terminal}, {vars:?}");
    }

    #[test]
    fn color_follows_no_color_and_clicolor() {
        check_color(true, &[], true);
        check_color(false, &[], false);
        check_color(true, &[("NO_COLOR", "1")], false);
        check_color(true, &[("NO_COLOR", "")], true);
        check_color(false, &[("CLICOLOR_FORCE", "1")], true);
        check_color(false, &[("CLICOLOR_FORCE", "yes")], true);
        check_color(false, &[("CLICOLOR_FORCE", "0")], false);
        check_color(false, &[("CLICOLOR_FORCE", "")], false);
        check_color(false, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false);
        check_color(true, &[("CLICOLOR", "0")], false);
        check_color(true, &[("CLICOLOR", "1")], true);
        check_color(false, &[("CLICOLOR", "1")], false);
        check_color(false, &[("CLICOLOR", "0"), ("CLICOLOR_FORCE", "1")], true);
        check_color(true, &[("TERM", "dumb")], false);
        check_color(false, &[("TERM", "dumb"), ("CLICOLOR_FORCE", "1")], true);
    }

    #[track_caller]
    fn check_render(d: Diagnostic, source: &str, expect: &str) {
        assert_eq!(d.render("p.yaml", source, false), expect);
    }

    #[test]
    fn render_points_at_the_span_and_its_related_places() {
        let src = "a: 1\nbb: two\n\tc: x\n";
        check_render(
            Diagnostic::error(Loc::new(2, 5, 3), "bad").with_help("fix it"),
            src,
            "error: bad\n --> p.yaml:2:5\n  |\n2 | bb: two\n  |     ^^^\n  |\n  = help: fix it\n",
        );
        // A span longer than its line stops at the line's end; an empty one is one caret wide.
        check_render(
            Diagnostic::error(Loc::new(1, 4, 40), "long"),
            src,
            "error: long\n --> p.yaml:1:4\n  |\n1 | a: 1\n  |    ^\n",
        );
        check_render(
            Diagnostic::warning(Loc::new(1, 1, 0), "empty"),
            src,
            "warning: empty\n --> p.yaml:1:1\n  |\n1 | a: 1\n  | ^\n",
        );
        check_render(
            Diagnostic::error(Loc::new(3, 2, 1), "again").with_related(Loc::new(1, 1, 1), "first here"),
            src,
            "error: again\n --> p.yaml:3:2\n  |\n1 | a: 1\n  | - first here\n2 | bb: two\n3 |     c: x\n  |     ^\n",
        );
        // Control characters of the profile are drawn as symbols, in the help line too.
        check_render(
            Diagnostic::error(Loc::new(1, 1, 1), "x").with_help("rename \u{1b}[2J"),
            src,
            "error: x\n --> p.yaml:1:1\n  |\n1 | a: 1\n  | ^\n  |\n  = help: rename \u{241b}[2J\n",
        );
        // No such line: the place alone.
        check_render(Diagnostic::error(Loc::new(9, 1, 1), "gone"), src, "error: gone\n--> p.yaml:9:1\n");
        check_render(Diagnostic::error(Loc::default(), "nowhere"), src, "error: nowhere\n--> p.yaml\n");
    }
}
