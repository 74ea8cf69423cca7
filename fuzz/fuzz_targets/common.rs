//! What both targets assert about diagnostics: a refused profile has an error, and every
//! diagnostic points at a place in the document.

use vnetgen::diag::Diagnostic;

/// Panics unless `diags` (of a profile `check` refused) hold an error and every one is located
/// (`unlocated`).
pub fn refused_with_located_errors(diags: &[Diagnostic], bytes: &[u8]) {
    assert!(diags.iter().any(Diagnostic::is_error), "check refuses without an error: {diags:#?}");
    for d in diags {
        if let Some(why) = unlocated(d, bytes) {
            panic!("a diagnostic points outside the document ({why}): {d:#?}");
        }
    }
}

/// Why `d`'s place is not in the document, if it is not: a known location (`Loc::is_known`) on a
/// line of the document — the empty line after a final newline counts, that is where the end of
/// the input is — at a column of that line, one past its end allowed. Lines end at LF, as
/// `diag::render` (`str::lines`) and the UTF-8 check count them.
/// (A lone CR, which YAML would count as a line break, is refused up front, located by LF.)
fn unlocated(d: &Diagnostic, bytes: &[u8]) -> Option<String> {
    if !d.loc.is_known() {
        return Some(format!("unknown location {:?}", d.loc));
    }
    // Lossy: a profile that is not UTF-8 is refused at its first bad byte, located in the text
    // before it, which this keeps as it is.
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    let (line, col) = (d.loc.line as usize, d.loc.col as usize);
    if line > lines.len() {
        return Some(format!("line {line} of a {}-line document", lines.len()));
    }
    let width = lines[line - 1].chars().count();
    (col == 0 || col > width + 1).then(|| format!("column {col} of line {line}, which has {width} characters"))
}
