//! Ruby gems, from two sources:
//!
//! * installed gem specifications — `<GEM_HOME>/specifications/<name>-<version>.gemspec`,
//!   and Ruby's bundled "default gems" under `specifications/default/`;
//! * Bundler lockfiles — `Gemfile.lock` (or `gems.locked`), the `GEM` sections'
//!   resolved `specs:`.
//!
//! Installed gemspecs are Ruby source that RubyGems generates from a fixed
//! template (`s.name = "rack".freeze`). They are read with plain text matching,
//! never evaluated: the common generated and hand-written forms are recognised,
//! and the `# stub: <name> <version> …` header RubyGems writes is a fallback.
//!
//! Lockfiles inside an installed gem's directory (a path under a `gems/`
//! directory, e.g. `…/gems/rack-3.0.8/Gemfile.lock`) are the gem authors'
//! development locks, not what the image runs, so they are not wanted.
//! `GIT` and `PATH` sections are skipped: they are checkouts and local code
//! whose versions do not correspond to RubyGems releases.

use crate::cataloger::{read_text_capped, CatalogContext, CatalogError, Cataloger, FileMeta, Found};
use crate::package::{Package, PackageType};
use std::collections::BTreeSet;
use std::io::Read;

/// The catalogers of this module.
pub fn catalogers() -> Vec<Box<dyn Cataloger>> {
    vec![Box::new(GemspecCataloger), Box::new(GemfileLockCataloger)]
}

/// Parses installed `specifications/*.gemspec` files.
pub struct GemspecCataloger;

/// Parses Bundler's `Gemfile.lock` / `gems.locked`.
pub struct GemfileLockCataloger;

/// Generated gemspecs are a few KiB; the long ones list every file of the gem.
const MAX_GEMSPEC_SIZE: u64 = 4 << 20;

/// Lockfiles of large applications stay well below this.
const MAX_LOCK_SIZE: u64 = 16 << 20;

impl Cataloger for GemspecCataloger {
    fn name(&self) -> &'static str {
        "ruby-gemspec"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        let mut parts = file.path.rsplit('/');
        let name = parts.next().unwrap_or_default();
        if name.len() <= ".gemspec".len() || !name.ends_with(".gemspec") {
            return false;
        }
        match parts.next() {
            Some("specifications") => true,
            Some("default") => parts.next() == Some("specifications"),
            _ => false,
        }
    }

    fn max_size(&self) -> u64 {
        MAX_GEMSPEC_SIZE
    }

    fn catalog(
        &self,
        _file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let text = read_text_capped(content, MAX_GEMSPEC_SIZE)?;
        parse_gemspec(&text)
    }
}

impl Cataloger for GemfileLockCataloger {
    fn name(&self) -> &'static str {
        "ruby-gemfile-lock"
    }

    fn version(&self) -> u32 {
        1
    }

    fn wants(&self, file: &FileMeta<'_>) -> bool {
        matches!(file.file_name(), "Gemfile.lock" | "gems.locked")
            && !file.path.split('/').rev().skip(1).any(|segment| segment == "gems")
    }

    fn max_size(&self) -> u64 {
        MAX_LOCK_SIZE
    }

    fn catalog(
        &self,
        _file: &FileMeta<'_>,
        content: &mut dyn Read,
        _ctx: &CatalogContext,
    ) -> Result<Found, CatalogError> {
        let text = read_text_capped(content, MAX_LOCK_SIZE)?;
        parse_gemfile_lock(&text)
    }
}

/// Parses an installed gemspec into (at most) one package.
///
/// Fails when the text is not recognisably a gemspec; a gemspec without a
/// readable name or version yields a warning and no package.
pub fn parse_gemspec(text: &str) -> Result<Found, CatalogError> {
    let mut name = None;
    let mut version = None;
    let mut licenses: Vec<String> = Vec::new();
    let mut stub = None;
    let mut is_spec = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# stub:") {
            let mut words = rest.split_whitespace();
            if let (Some(n), Some(v)) = (words.next(), words.next()) {
                stub.get_or_insert((n.to_string(), v.to_string()));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.contains("Gem::Specification") {
            is_spec = true;
        }
        let Some((attr, rhs)) = attribute_assignment(line) else { continue };
        match attr {
            // The first assignment wins: later ones sit in version-conditional
            // branches of old templates, and nothing overrides the name.
            "name" if name.is_none() => name = first_string(rhs),
            "version" if version.is_none() => version = first_string(rhs),
            "license" | "licenses" => {
                for l in all_strings(rhs) {
                    if !licenses.contains(&l) {
                        licenses.push(l);
                    }
                }
            }
            _ => {}
        }
    }
    if !is_spec && stub.is_none() && name.is_none() {
        return Err(CatalogError::malformed("not a gemspec: no Gem::Specification, stub line or name"));
    }
    let (stub_name, stub_version) = stub.unzip();
    let mut found = Found::default();
    let Some(name) = name.or(stub_name).filter(|n| !n.is_empty()) else {
        found.warnings.push("gemspec without a readable name; skipped".into());
        return Ok(found);
    };
    let Some(version) = version.or(stub_version).filter(|v| !v.is_empty()) else {
        found.warnings.push(format!("gem {name:?} has no readable version; skipped"));
        return Ok(found);
    };
    let mut p = Package::new(PackageType::Gem, name, version);
    p.licenses = licenses;
    found.packages.push(p);
    Ok(found)
}

/// Splits `<receiver>.<attr> = <rhs>` (receiver and attr plain identifiers,
/// `=` not part of `==`/`=~`/`=>`), returning `(attr, rhs)`.
fn attribute_assignment(line: &str) -> Option<(&str, &str)> {
    let (receiver, rest) = line.split_once('.')?;
    if receiver.is_empty() || !receiver.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let attr_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
    let (attr, rest) = rest.split_at(attr_len);
    let rhs = rest.trim_start().strip_prefix('=')?;
    if attr.is_empty() || rhs.starts_with(['=', '~', '>']) {
        return None;
    }
    Some((attr, rhs.trim()))
}

/// The first string literal in a Ruby expression: `"x"`, `'x'`, `%q{x}` (any
/// bracket or delimiter), or a `%w[...]` word list's first word.
fn first_string(expr: &str) -> Option<String> {
    all_strings(expr).into_iter().next()
}

/// Every string literal in a Ruby expression, in order, e.g. the elements of
/// `["MIT".freeze, "Ruby".freeze]` or `%w[MIT Ruby]`. Escapes are resolved
/// for the quote and backslash only; interpolation is not evaluated.
fn all_strings(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut s = String::new();
                let mut closed = false;
                while let Some((_, d)) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                s.push(e);
                            }
                        }
                        d if d == c => {
                            closed = true;
                            break;
                        }
                        d => s.push(d),
                    }
                }
                if closed {
                    out.push(s.trim().to_string());
                }
            }
            '%' => {
                let rest = &expr[i + 1..];
                let (kind, body) = match rest.chars().next() {
                    Some(k @ ('q' | 'Q' | 'w' | 'W')) => (k, &rest[1..]),
                    _ => continue,
                };
                let Some(open) = body.chars().next() else { continue };
                let close = match open {
                    '{' => '}',
                    '[' => ']',
                    '(' => ')',
                    '<' => '>',
                    c if c.is_ascii_punctuation() => c,
                    _ => continue,
                };
                let inner = &body[open.len_utf8()..];
                let Some(end) = inner.find(close) else { continue };
                let literal = &inner[..end];
                if matches!(kind, 'w' | 'W') {
                    out.extend(literal.split_whitespace().map(str::to_string));
                } else {
                    out.push(literal.trim().to_string());
                }
                // Skip past the literal so its content is not rescanned.
                let consumed = i + 1 + kind.len_utf8() + open.len_utf8() + end + close.len_utf8();
                while chars.peek().is_some_and(|(j, _)| *j < consumed) {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Parses a Bundler lockfile: the `specs:` of every `GEM` section.
///
/// Fails when the text has no lockfile section at all.
pub fn parse_gemfile_lock(text: &str) -> Result<Found, CatalogError> {
    let mut found = Found::default();
    let mut seen = BTreeSet::new();
    let mut sections = 0;
    let mut in_gem = false;
    let mut in_specs = false;
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        match indent {
            0 => {
                sections += 1;
                in_gem = line == "GEM";
                in_specs = false;
            }
            2 => in_specs = in_gem && line.trim_start() == "specs:",
            // Resolved gems sit at four spaces; their own dependencies at six.
            4 if in_specs => match parse_spec_line(line.trim_start()) {
                Some((name, version)) => {
                    // One gem locked for several platforms repeats with the same version.
                    if seen.insert((name.to_string(), version.to_string())) {
                        found.packages.push(Package::new(PackageType::Gem, name, version));
                    }
                }
                None => found.warnings.push(format!("line {}: unreadable spec {:?}; skipped", lineno + 1, line.trim())),
            },
            _ => {}
        }
    }
    if sections == 0 {
        return Err(CatalogError::malformed("no lockfile sections (GEM, PLATFORMS, DEPENDENCIES …) found"));
    }
    Ok(found)
}

/// `name (version[-platform])` → `(name, version)`. Bundler itself splits the
/// parenthesis at the first `-` (RubyGems versions cannot contain one), so the
/// platform suffix is dropped the same way; a `-` in the name is kept.
fn parse_spec_line(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(" (")?;
    let inner = rest.strip_suffix(')')?;
    let version = inner.split_once('-').map_or(inner, |(v, _platform)| v).trim();
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) || version.is_empty() {
        return None;
    }
    Some((name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> FileMeta<'_> {
        FileMeta { path, size: 1, mode: 0o644 }
    }

    fn gemspec(text: &str) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(1 << 20).expect("scratch dir");
        GemspecCataloger.catalog(&meta("specifications/x.gemspec"), &mut text.as_bytes(), &ctx)
    }

    fn one(text: &str) -> Package {
        let found = gemspec(text).expect("parses");
        assert_eq!(found.packages.len(), 1, "warnings: {:?}", found.warnings);
        found.packages[0].clone()
    }

    fn lockfile(text: &str) -> Result<Found, CatalogError> {
        let ctx = CatalogContext::new(1 << 20).expect("scratch dir");
        GemfileLockCataloger.catalog(&meta("app/Gemfile.lock"), &mut text.as_bytes(), &ctx)
    }

    #[test]
    fn gemspec_wants() {
        let w = |p: &str| GemspecCataloger.wants(&meta(p));
        assert!(w("usr/local/bundle/specifications/rack-3.0.8.gemspec"));
        assert!(w("usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"));
        assert!(w("var/lib/gems/3.0.0/specifications/nokogiri-1.15.4-x86_64-linux.gemspec"));
        assert!(!w("usr/local/bundle/gems/rack-3.0.8/rack.gemspec"), "a gem's source gemspec");
        assert!(!w("app/myapp.gemspec"));
        assert!(!w("specifications/.gemspec"));
        assert!(!w("usr/local/bundle/specifications/rack-3.0.8.gemspec.orig"));
        assert!(!w("x/default/json.gemspec"));
    }

    #[test]
    fn lockfile_wants() {
        let w = |p: &str| GemfileLockCataloger.wants(&meta(p));
        assert!(w("usr/src/app/Gemfile.lock"));
        assert!(w("Gemfile.lock"));
        assert!(w("srv/app/gems.locked"));
        assert!(!w("usr/local/bundle/gems/rack-3.0.8/Gemfile.lock"), "a gem's development lockfile");
        assert!(!w("usr/local/bundle/bundler/gems/rails-abc/Gemfile.lock"));
        assert!(!w("usr/src/app/Gemfile"));
        assert!(!w("usr/src/app/Gemfile.lock.bak"));
    }

    #[test]
    fn generated_modern_gemspec() {
        let p = one(include_str!("../../testdata/ruby/nokogiri-1.15.4-x86_64-linux.gemspec"));
        assert_eq!((p.name.as_str(), p.version.as_str()), ("nokogiri", "1.15.4"));
        assert_eq!(p.kind, PackageType::Gem);
        assert_eq!(p.licenses, ["MIT"]);
    }

    #[test]
    fn default_gem_and_old_forms() {
        let p = one(include_str!("../../testdata/ruby/json-2.6.1.gemspec"));
        assert_eq!((p.name.as_str(), p.version.as_str()), ("json", "2.6.1"));
        assert_eq!(p.licenses, ["Ruby"]);
        let p = one("Gem::Specification.new do |s|\n  s.name = %q{rake}\n  s.version = \"0.8.7\"\n  s.licenses = %w[MIT Ruby]\nend\n");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("rake", "0.8.7"));
        assert_eq!(p.licenses, ["MIT", "Ruby"]);
        let p = one(
            "Gem::Specification.new do |spec|\n  spec.name    = 'hand-made'\n  spec.version = Gem::Version.new(\"1.2.3.pre\")\n  \
             spec.license = \"Apache-2.0\"\n  if spec.name == \"other\"\n  end\nend\n",
        );
        assert_eq!((p.name.as_str(), p.version.as_str()), ("hand-made", "1.2.3.pre"));
        assert_eq!(p.licenses, ["Apache-2.0"]);
    }

    #[test]
    fn stub_line_is_a_fallback() {
        // The version here is a constant reference the text matcher cannot read.
        let p = one("# stub: rails 7.0.4 ruby lib\nGem::Specification.new do |s|\n  s.name = \"rails\"\n  s.version = Rails::VERSION\nend\n");
        assert_eq!((p.name.as_str(), p.version.as_str()), ("rails", "7.0.4"));
    }

    #[test]
    fn gemspec_problems() {
        let found = gemspec("Gem::Specification.new do |s|\n  s.name = \"nover\"\nend\n").expect("parses");
        assert!(found.packages.is_empty());
        assert!(found.warnings[0].contains("nover"));
        let found = gemspec("Gem::Specification.new do |s|\n  s.name = name_from_somewhere\nend\n").expect("parses");
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 1);
        for bad in ["", "puts 'hello'\n", "\u{0}\u{1}binary", "s.name = \"unterminated"] {
            assert!(matches!(gemspec(bad), Err(CatalogError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn string_literals() {
        assert_eq!(all_strings(r#"["MIT".freeze, "Ruby".freeze]"#), ["MIT", "Ruby"]);
        assert_eq!(all_strings(r#""a\"b".freeze"#), ["a\"b"]);
        assert_eq!(all_strings("%q<x>"), ["x"]);
        assert_eq!(all_strings("%q|x| + 'y'"), ["x", "y"]);
        assert_eq!(all_strings("%Q(it's)"), ["it's"]);
        assert!(all_strings("%q{unterminated").is_empty());
        assert!(all_strings("'unterminated").is_empty());
        assert!(all_strings("% q").is_empty());
        assert_eq!(all_strings("%w[é ü]"), ["é", "ü"]);
    }

    #[test]
    fn gemfile_lock() {
        let found = lockfile(include_str!("../../testdata/ruby/Gemfile.lock")).expect("parses");
        let mut got: Vec<String> = found.packages.iter().map(|p| format!("{}@{}", p.name, p.version)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "actionpack@7.0.4",
                "activerecord-import@1.4.1",
                "mini_portile2@2.8.4",
                "nokogiri@1.15.4",
                "rack@2.2.8",
                "sidekiq-pro@7.1.0",
            ],
            "GIT/PATH sections, nested dependencies and repeated platforms left out"
        );
        assert!(found.packages.iter().all(|p| p.kind == PackageType::Gem));
        assert!(found.warnings.iter().any(|w| w.contains("no-version")), "{:?}", found.warnings);
    }

    #[test]
    fn gemfile_lock_problems() {
        assert!(matches!(lockfile(""), Err(CatalogError::Malformed(_))));
        assert!(matches!(lockfile("  just indented\n    text (1)\n"), Err(CatalogError::Malformed(_))));
        let found = lockfile(
            "GEM\r\n  remote: https://rubygems.org/\r\n  specs:\r\n    rake (13.0.6)\r\n\r\nPLATFORMS\r\n  ruby\r\n",
        )
        .expect("parses");
        assert_eq!(found.packages.len(), 1);
        assert_eq!(found.packages[0].version, "13.0.6");
        let found = lockfile("GEM\n  specs:\n    broken (1.0\n    (2.0)\n    two words (1)\n").expect("parses");
        assert!(found.packages.is_empty());
        assert_eq!(found.warnings.len(), 3);
    }
}
