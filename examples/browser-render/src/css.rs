//! The style subset: `display` from `<style>` blocks and `style=""`, by simple selectors.
//!
//! A rule's selector list is split on commas; each selector is kept only when it is one compound
//! selector of a tag name (or `*`), `#id` and `.class` parts (e.g. `p`, `.ad`, `#nav`,
//! `div.note`). Selectors with combinators, attributes or pseudo-classes are ignored (their
//! elements are shown: failing open on *showing* is the safe side for a text browser). `@`-rules
//! are skipped whole, so `@media print { .x { display: none } }` hides nothing. The cascade is
//! specificity then order; `style=""` wins over the sheet.

use std::collections::BTreeMap;

/// CSS text past this many bytes is ignored (all `<style>` blocks together).
pub(crate) const MAX_CSS_BYTES: usize = 1 << 20;
/// Rules kept at most (compound selectors with a `display` declaration).
const MAX_RULES: usize = 4096;
/// Rules whose selector has more than one part (`div.note`), checked one by one, kept at most.
const MAX_COMPOUND_RULES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Display {
    /// No `display` said: the element's own kind.
    Default,
    None,
    Block,
    Inline,
}

/// (ids, classes, tags) then source order: larger wins.
type Rank = (u16, u16, u16, u32);

#[derive(Debug, Clone)]
struct Compound {
    tag: Option<String>,
    id: Option<String>,
    classes: Vec<String>,
    display: Display,
    rank: Rank,
}

#[derive(Debug, Default)]
pub(crate) struct StyleSheet {
    /// The winning rule for a selector that is exactly one tag / id / class.
    by_tag: BTreeMap<String, (Rank, Display)>,
    by_id: BTreeMap<String, (Rank, Display)>,
    by_class: BTreeMap<String, (Rank, Display)>,
    universal: Option<(Rank, Display)>,
    compound: Vec<Compound>,
}

impl StyleSheet {
    pub(crate) fn parse(css: &str) -> StyleSheet {
        let mut sheet = StyleSheet::default();
        let css = strip_comments(css);
        let mut order = 0u32;
        let mut rules = 0usize;
        let bytes = css.as_bytes();
        let mut i = 0;
        while i < bytes.len() && rules < MAX_RULES {
            // Prelude up to `{` (or a `;` ending an at-statement like `@import ...;`).
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            let at_rule = bytes.get(i) == Some(&b'@');
            while i < bytes.len() && bytes[i] != b'{' && !(at_rule && bytes[i] == b';') {
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            let prelude = css[start..i].trim();
            if bytes[i] == b';' {
                i += 1;
                continue;
            }
            // The block, up to its balanced `}` (nested blocks of @-rules included).
            let body_start = i + 1;
            let mut level = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => level += 1,
                    b'}' => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let body = &css[body_start..i.min(bytes.len())];
            i += 1;
            if prelude.starts_with('@') {
                continue;
            }
            let Some(display) = declared_display(body) else {
                continue;
            };
            for selector in prelude.split(',') {
                let Some(mut compound) = parse_compound(selector.trim()) else {
                    continue;
                };
                order += 1;
                rules += 1;
                compound.display = display;
                sheet.add(compound, order);
            }
        }
        sheet
    }

    fn add(&mut self, mut c: Compound, order: u32) {
        let ids = u16::from(c.id.is_some());
        let classes = u16::try_from(c.classes.len()).unwrap_or(u16::MAX);
        let tags = u16::from(c.tag.is_some());
        c.rank = (ids, classes, tags, order);
        let entry = (c.rank, c.display);
        let put = |map: &mut BTreeMap<String, (Rank, Display)>, key: String| {
            let slot = map.entry(key).or_insert(entry);
            if slot.0 < entry.0 {
                *slot = entry;
            }
        };
        match (ids + classes + tags, &c) {
            (0, _) => {
                if self.universal.is_none_or(|u| u.0 < entry.0) {
                    self.universal = Some(entry);
                }
            }
            (1, Compound { tag: Some(tag), .. }) => put(&mut self.by_tag, tag.clone()),
            (1, Compound { id: Some(id), .. }) => put(&mut self.by_id, id.clone()),
            (1, Compound { classes, .. }) if classes.len() == 1 => {
                put(&mut self.by_class, classes[0].clone());
            }
            _ => {
                if self.compound.len() < MAX_COMPOUND_RULES {
                    self.compound.push(c);
                }
            }
        }
    }

    /// The `display` the sheet gives an element.
    pub(crate) fn display<'a>(
        &self,
        tag: &str,
        id: Option<&str>,
        classes: impl Iterator<Item = &'a str>,
    ) -> Display {
        let mut best: Option<(Rank, Display)> = self.universal;
        let mut consider = |cand: Option<&(Rank, Display)>| {
            if let Some(c) = cand {
                if best.is_none_or(|b| b.0 < c.0) {
                    best = Some(*c);
                }
            }
        };
        consider(self.by_tag.get(tag));
        if let Some(id) = id {
            consider(self.by_id.get(id));
        }
        let classes: Vec<&str> = classes.take(32).collect();
        for class in &classes {
            consider(self.by_class.get(*class));
        }
        for c in &self.compound {
            let matches = c.tag.as_deref().is_none_or(|t| t.eq_ignore_ascii_case(tag))
                && c.id.as_deref().is_none_or(|want| id == Some(want))
                && c.classes
                    .iter()
                    .all(|want| classes.contains(&want.as_str()));
            if matches {
                consider(Some(&(c.rank, c.display)));
            }
        }
        best.map_or(Display::Default, |b| b.1)
    }
}

/// The `display` of a `style=""` attribute, if it says one.
pub(crate) fn inline_display(style: &str) -> Option<Display> {
    declared_display(style)
}

/// The last `display` declaration in a declaration block.
fn declared_display(body: &str) -> Option<Display> {
    let mut found = None;
    for decl in body.split(';') {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        if !prop.trim().eq_ignore_ascii_case("display") {
            continue;
        }
        let value = value
            .trim()
            .trim_end_matches("!important")
            .trim()
            .to_ascii_lowercase();
        found = Some(match value.as_str() {
            "none" => Display::None,
            "inline" | "inline-block" | "inline-flex" | "inline-grid" | "contents" => {
                Display::Inline
            }
            "block" | "flex" | "grid" | "list-item" | "flow-root" | "table" => Display::Block,
            _ => continue,
        });
    }
    found
}

/// One compound selector (`div`, `.a.b`, `#x`, `p.note`, `*`), or `None` for anything else.
fn parse_compound(sel: &str) -> Option<Compound> {
    if sel.is_empty() {
        return None;
    }
    let mut c = Compound {
        tag: None,
        id: None,
        classes: Vec::new(),
        display: Display::Default,
        rank: (0, 0, 0, 0),
    };
    let ident = |s: &str| -> usize {
        s.find(|ch: char| !(ch.is_alphanumeric() || ch == '-' || ch == '_' || !ch.is_ascii()))
            .unwrap_or(s.len())
    };
    let mut rest = sel;
    if let Some(r) = rest.strip_prefix('*') {
        rest = r;
    } else {
        let n = ident(rest);
        if n > 0 {
            c.tag = Some(rest[..n].to_ascii_lowercase());
            rest = &rest[n..];
        }
    }
    while !rest.is_empty() {
        let (kind, r) = rest.split_at(1);
        let n = ident(r);
        if n == 0 {
            return None;
        }
        match kind {
            "." => c.classes.push(r[..n].to_owned()),
            "#" if c.id.is_none() => c.id = Some(r[..n].to_owned()),
            _ => return None,
        }
        rest = &r[n..];
    }
    Some(c)
}

fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(css: &str, tag: &str, id: Option<&str>, classes: &[&str]) -> Display {
        StyleSheet::parse(css).display(tag, id, classes.iter().copied())
    }

    #[test]
    fn selectors_of_the_subset() {
        let css = "/* c */ .ad, #nav { display: none } p { display:block } div.note{display:none !important}
                   @media print { p { display: none } } a > b { display: none } span.x.y { display: inline }";
        assert_eq!(d(css, "div", None, &["ad"]), Display::None);
        assert_eq!(d(css, "div", Some("nav"), &[]), Display::None);
        assert_eq!(d(css, "p", None, &[]), Display::Block);
        assert_eq!(d(css, "div", None, &["note"]), Display::None);
        assert_eq!(d(css, "span", None, &["note"]), Display::Default);
        assert_eq!(d(css, "b", None, &[]), Display::Default);
        assert_eq!(d(css, "span", None, &["y", "x"]), Display::Inline);
        // Specificity: the id rule beats a later tag rule.
        assert_eq!(
            d(
                "#k { display: none } div { display: block }",
                "div",
                Some("k"),
                &[]
            ),
            Display::None
        );
        // Order: the later of two equal rules wins.
        assert_eq!(
            d(
                ".a { display: none } .a { display: block }",
                "i",
                None,
                &["a"]
            ),
            Display::Block
        );
    }

    #[test]
    fn garbage_never_panics() {
        for css in [
            "{{{{",
            "}}}}",
            "a{",
            "@media{",
            "a{display:none",
            "/*",
            "..{}",
            "#{}",
            "a,,{display:none}",
            "é.ü{display:none}",
        ] {
            let _ = StyleSheet::parse(css).display("a", None, std::iter::empty());
        }
    }
}
