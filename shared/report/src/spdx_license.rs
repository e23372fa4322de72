//! Deciding whether a package's declared license strings form a valid SPDX
//! license expression.
//!
//! Catalogers record licenses as the package writes them: SPDX ids from
//! npm and PyPI metadata, but also Debian copyright names (`GPL-2+`,
//! `Expat`), prose (`Apache 2.0`) and URLs. An SBOM that passes those off as
//! SPDX expressions is invalid, so only strings that parse as expressions
//! over known SPDX identifiers go through (in canonical case); anything else
//! becomes `NOASSERTION`. The identifier table is a curated subset of the
//! SPDX License List (the licenses found in container images in practice):
//! an id missing from it costs an assertion, never validity.

/// SPDX license identifiers accepted in expressions (canonical case).
const LICENSES: &[&str] = &[
    "0BSD",
    "AFL-2.0",
    "AFL-2.1",
    "AFL-3.0",
    "AGPL-1.0",
    "AGPL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "APSL-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BlueOak-1.0.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-2-Clause-Patent",
    "BSD-3-Clause",
    "BSD-3-Clause-Clear",
    "BSD-4-Clause",
    "BSD-Source-Code",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CDDL-1.1",
    "CECILL-2.1",
    "CPL-1.0",
    "curl",
    "ECL-2.0",
    "EFL-2.0",
    "EPL-1.0",
    "EPL-2.0",
    "EUPL-1.1",
    "EUPL-1.2",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.1",
    "GFDL-1.1-only",
    "GFDL-1.1-or-later",
    "GFDL-1.2",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "ImageMagick",
    "Info-ZIP",
    "IPL-1.0",
    "ISC",
    "JSON",
    "LGPL-2.0",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libpng-2.0",
    "libtiff",
    "LPL-1.02",
    "MirOS",
    "MIT",
    "MIT-0",
    "MIT-CMU",
    "MPL-1.0",
    "MPL-1.1",
    "MPL-2.0",
    "MS-PL",
    "NCSA",
    "ODbL-1.0",
    "OFL-1.1",
    "OLDAP-2.8",
    "OpenSSL",
    "OSL-3.0",
    "PHP-3.0",
    "PHP-3.01",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "UPL-1.0",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "zlib-acknowledgement",
    "ZPL-2.0",
    "ZPL-2.1",
];

/// SPDX license exception identifiers accepted after `WITH` (canonical case).
const EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-2.0",
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "Font-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "Libtool-exception",
    "Linux-syscall-note",
    "LLVM-exception",
    "OpenJDK-assembly-exception-1.0",
    "openvpn-openssl-exception",
    "Qt-GPL-exception-1.0",
    "Qt-LGPL-exception-1.1",
    "u-boot-exception-2.0",
    "WxWindows-exception-3.1",
];

/// The SPDX expression for a package's declared licenses: each string must be
/// a valid expression; several are combined with `AND` (the package holds
/// material under each). `None` when there are none or any is not valid.
pub(crate) fn declared_expression(licenses: &[String]) -> Option<String> {
    let parsed: Vec<Expr> = licenses.iter().map(|l| parse(l)).collect::<Option<_>>()?;
    match parsed.len() {
        0 => None,
        1 => parsed.into_iter().next().map(|e| e.to_string()),
        _ => Some(Expr::And(parsed).to_string()),
    }
}

/// A parsed license expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// A license id, `+` (or later), and an optional exception.
    License { id: &'static str, or_later: bool, exception: Option<&'static str> },
    /// All of these.
    And(Vec<Expr>),
    /// Any of these.
    Or(Vec<Expr>),
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::License { id, or_later, exception } => {
                write!(f, "{id}{}", if *or_later { "+" } else { "" })?;
                if let Some(e) = exception {
                    write!(f, " WITH {e}")?;
                }
                Ok(())
            }
            Expr::And(parts) | Expr::Or(parts) => {
                let op = if matches!(self, Expr::And(_)) { " AND " } else { " OR " };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    // Parenthesise compound operands so precedence never changes meaning.
                    match p {
                        Expr::License { .. } => write!(f, "{p}")?,
                        _ => write!(f, "({p})")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Parses one expression; `None` when it is not valid over the known ids.
fn parse(text: &str) -> Option<Expr> {
    let tokens = tokenize(text);
    let mut pos = 0;
    let expr = parse_or(&tokens, &mut pos)?;
    (pos == tokens.len()).then_some(expr)
}

fn tokenize(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if let Some(s) = start.take() {
                tokens.push(&text[s..i]);
            }
            if c == '(' || c == ')' {
                tokens.push(&text[i..i + 1]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        tokens.push(&text[s..]);
    }
    tokens
}

fn parse_or(t: &[&str], pos: &mut usize) -> Option<Expr> {
    let mut parts = vec![parse_and(t, pos)?];
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        parts.push(parse_and(t, pos)?);
    }
    Some(if parts.len() == 1 { parts.remove(0) } else { Expr::Or(parts) })
}

fn parse_and(t: &[&str], pos: &mut usize) -> Option<Expr> {
    let mut parts = vec![parse_with(t, pos)?];
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        parts.push(parse_with(t, pos)?);
    }
    Some(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
}

fn parse_with(t: &[&str], pos: &mut usize) -> Option<Expr> {
    let token = *t.get(*pos)?;
    *pos += 1;
    if token == "(" {
        let inner = parse_or(t, pos)?;
        return (t.get(*pos) == Some(&")")).then(|| {
            *pos += 1;
            inner
        });
    }
    let (name, or_later) = match token.strip_suffix('+') {
        Some(base) => (base, true),
        None => (token, false),
    };
    let id = lookup(LICENSES, name)?;
    let exception = if t.get(*pos) == Some(&"WITH") {
        *pos += 1;
        let e = lookup(EXCEPTIONS, t.get(*pos)?)?;
        *pos += 1;
        Some(e)
    } else {
        None
    };
    Some(Expr::License { id, or_later, exception })
}

/// SPDX ids match case-insensitively; the canonical spelling is returned.
fn lookup(table: &[&'static str], name: &str) -> Option<&'static str> {
    table.iter().copied().find(|id| id.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(licenses: &[&str]) -> Option<String> {
        declared_expression(&licenses.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn passes_valid_expressions_in_canonical_case() {
        assert_eq!(expr(&["MIT"]).as_deref(), Some("MIT"));
        assert_eq!(expr(&["mit"]).as_deref(), Some("MIT"));
        assert_eq!(expr(&["Apache-2.0 OR MIT"]).as_deref(), Some("Apache-2.0 OR MIT"));
        assert_eq!(
            expr(&["(MIT OR Apache-2.0) AND BSD-3-Clause"]).as_deref(),
            Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
        assert_eq!(
            expr(&["GPL-2.0-or-later WITH Classpath-exception-2.0"]).as_deref(),
            Some("GPL-2.0-or-later WITH Classpath-exception-2.0")
        );
        assert_eq!(expr(&["GPL-2.0+"]).as_deref(), Some("GPL-2.0+"));
        assert_eq!(expr(&["MIT", "Apache-2.0 OR MIT"]).as_deref(), Some("MIT AND (Apache-2.0 OR MIT)"));
    }

    #[test]
    fn rejects_free_text() {
        for bad in [
            "Apache 2.0",
            "GPL-2+",
            "Expat",
            "BSD",
            "public-domain",
            "LicenseRef-custom",
            "MIT OR",
            "(MIT",
            "MIT)",
            "MIT and Apache-2.0",
            "https://opensource.org/licenses/MIT",
            "",
        ] {
            assert_eq!(expr(&[bad]), None, "{bad}");
        }
        assert_eq!(expr(&[]), None);
        assert_eq!(expr(&["MIT", "Expat"]), None);
    }
}
