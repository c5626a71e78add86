//! Reading XML inputs safely: a small element tree in which every element knows its byte span in
//! the input, built with quick-xml's pull reader; and a view for reading source records element by
//! element, collecting every problem with its element path.
//!
//! No DTD is ever read: a document with a `<!DOCTYPE>` is refused, and the only references
//! resolved are character references and the five predefined entities (`&amp;` `&lt;` `&gt;`
//! `&quot;` `&apos;`). External entities (XXE) and entity expansion bombs therefore cannot happen.

use std::ops::Range;

use quick_xml::{
    Reader,
    escape::resolve_predefined_entity,
    events::{BytesStart, Event},
};

use super::{Problem, json::Problems};

/// Deeper nesting than this is refused: no real message needs it, and it bounds the work (and
/// the recursion when the tree is dropped) for hostile input.
const MAX_DEPTH: usize = 32;

/// One element: its local name (any namespace prefix removed), where it sits in the input, its
/// own text (character data directly inside it, references resolved) and its child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub name: String,
    pub span: Range<usize>,
    pub text: String,
    pub children: Vec<Element>,
}

fn doc(problem: impl Into<String>) -> Problem {
    Problem::new("(document)", problem)
}

/// 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(at)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn position(reader: &Reader<&[u8]>, len: usize) -> usize {
    usize::try_from(reader.buffer_position())
        .unwrap_or(len)
        .min(len)
}

fn local_name(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

/// Parses a whole document into its root element. Anything that is not well-formed UTF-8 XML, or
/// that declares a DTD, is one problem about the document.
pub(crate) fn parse(input: &[u8]) -> Result<Element, Problem> {
    let text = std::str::from_utf8(input).map_err(|e| doc(format!("is not UTF-8: {e}")))?;
    let malformed = |at: usize, what: &dyn std::fmt::Display| {
        doc(format!(
            "is not well-formed XML (line {}): {what}",
            line_of(text, at)
        ))
    };
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = position(&reader, text.len());
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(before);
                return Err(malformed(at, &e));
            }
        };
        let after = position(&reader, text.len());
        let text_in = |content: &str, stack: &mut Vec<Element>| match stack.last_mut() {
            Some(open) => {
                open.text.push_str(content);
                Ok(())
            }
            None if content.trim().is_empty() => Ok(()),
            None => Err(malformed(before, &"text outside the root element")),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                for attribute in start.attributes() {
                    if let Err(e) = attribute {
                        return Err(malformed(before, &e));
                    }
                }
                if root.is_some() {
                    return Err(malformed(before, &"a second root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(doc(format!(
                        "nests elements more than {MAX_DEPTH} deep (line {})",
                        line_of(text, before)
                    )));
                }
                let element = Element {
                    name: local_name(start),
                    span: before..after,
                    text: String::new(),
                    children: Vec::new(),
                };
                // An empty element `<X/>` is complete at once; a start tag waits for its end.
                if matches!(event, Event::Empty(_)) {
                    close(element, &mut stack, &mut root);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                if let Some(mut element) = stack.pop() {
                    element.span.end = after;
                    close(element, &mut stack, &mut root);
                }
            }
            Event::Text(t) => {
                let content = t.xml_content().map_err(|e| malformed(before, &e))?;
                text_in(&content, &mut stack)?;
            }
            Event::CData(c) => {
                let content = c.xml_content().map_err(|e| malformed(before, &e))?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&content),
                    None => return Err(malformed(before, &"CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| malformed(before, &e))?;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&name) {
                        Some(s) => s.to_owned(),
                        None => {
                            return Err(malformed(
                                before,
                                &format!(
                                    "&{name}; is not a character reference or one of the five \
                                     predefined entities (amp, lt, gt, quot, apos)"
                                ),
                            ));
                        }
                    },
                    Err(e) => return Err(malformed(before, &e)),
                };
                text_in(&resolved, &mut stack)?;
            }
            Event::DocType(_) => {
                return Err(doc(
                    "has a <!DOCTYPE> declaration; DTDs are refused so that no entity is ever \
                     expanded (remove the <!DOCTYPE ...>)",
                ));
            }
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding() {
                    let encoding = String::from_utf8_lossy(&encoding).into_owned();
                    if !encoding.eq_ignore_ascii_case("UTF-8") {
                        return Err(doc(format!(
                            "declares encoding {encoding:?}; only UTF-8 is accepted"
                        )));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            text.len(),
            &format!("the document ends before <{}> is closed", open.name),
        ));
    }
    root.ok_or_else(|| doc("has no root element"))
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// An `xs:boolean`: `true`, `false`, `1` or `0`.
pub(crate) fn boolean(field: &str, value: &str, p: &mut Problems) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        other => {
            p.add(field, format!("must be true or false, not {other:?}"));
            None
        }
    }
}

/// One element of a source record, with its path inside the record (e.g. `Location/Postcode`,
/// empty for the record itself) for naming fields in problems.
#[derive(Debug, Clone)]
pub(crate) struct El<'a> {
    pub el: &'a Element,
    pub path: String,
}

impl<'a> El<'a> {
    pub fn root(el: &'a Element) -> Self {
        El {
            el,
            path: String::new(),
        }
    }

    /// The path of a child element, as problems name it.
    pub fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// How this element is named in problems: its path, or its own name for the record itself.
    pub fn me(&self) -> String {
        if self.path.is_empty() {
            self.el.name.clone()
        } else {
            self.path.clone()
        }
    }

    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.el.children.iter().filter(move |c| c.name == name)
    }

    /// Whether a child element of that name is present (even if empty).
    pub fn has(&self, name: &str) -> bool {
        self.el.children.iter().any(|c| c.name == name)
    }

    /// Every child element of that name, in order, with its indexed path (`Hazard[1]`, ...).
    pub fn each(&self, name: &'a str) -> Vec<El<'a>> {
        self.all(name)
            .enumerate()
            .map(|(i, el)| El {
                el,
                path: format!("{}[{}]", self.field(name), i + 1),
            })
            .collect()
    }

    /// The one child element of that name, if any; more than one is a problem.
    pub fn child(&self, name: &'a str, p: &mut Problems) -> Option<El<'a>> {
        let mut all = self.all(name);
        let el = all.next()?;
        let more = all.count();
        if more > 0 {
            p.add(
                self.field(name),
                format!("appears {} times; give it once", more + 1),
            );
        }
        Some(El {
            el,
            path: self.field(name),
        })
    }

    /// The text of this element, trimmed; `None` if it is empty or holds elements (a problem).
    pub fn own_text(&self, p: &mut Problems) -> Option<&'a str> {
        if !self.el.children.is_empty() {
            p.add(self.path.clone(), "must be text, not elements");
            return None;
        }
        let t = self.el.text.trim();
        (!t.is_empty()).then_some(t)
    }

    /// The text of the one child element `name`; `None` when absent or empty.
    pub fn text(&self, name: &'a str, p: &mut Problems) -> Option<&'a str> {
        self.child(name, p)?.own_text(p)
    }

    /// Like [`El::text`], but absence or emptiness is a problem.
    pub fn req_text(&self, name: &'a str, p: &mut Problems) -> Option<&'a str> {
        if !self.has(name) {
            p.add(self.field(name), "is required");
            return None;
        }
        let before = p.0.len();
        let value = self.text(name, p);
        if value.is_none() && p.0.len() == before {
            p.add(self.field(name), "is empty");
        }
        value
    }

    /// The texts of a list `<list><item>..</item>..</list>`, each with its path; empty items and
    /// elements other than `item` in the list are problems.
    pub fn texts(&self, list: &'a str, item: &'a str, p: &mut Problems) -> Vec<(String, &'a str)> {
        let Some(l) = self.child(list, p) else {
            return Vec::new();
        };
        l.known(&[item], p);
        let mut out = Vec::new();
        for x in l.each(item) {
            match x.own_text(p) {
                Some(t) => out.push((x.path, t)),
                None if x.el.children.is_empty() => p.add(x.path, "is empty"),
                None => {}
            }
        }
        out
    }

    /// A whole number.
    pub fn int(&self, name: &'a str, p: &mut Problems) -> Option<(String, i64)> {
        let v = self.text(name, p)?;
        let field = self.field(name);
        match v.parse::<i64>() {
            Ok(n) => Some((field, n)),
            Err(_) => {
                p.add(field, format!("must be a whole number, not {v:?}"));
                None
            }
        }
    }

    /// A decimal number.
    pub fn num(&self, name: &'a str, p: &mut Problems) -> Option<(String, f64)> {
        let v = self.text(name, p)?;
        let field = self.field(name);
        match v.parse::<f64>() {
            Ok(n) => Some((field, n)),
            Err(_) => {
                p.add(field, format!("must be a number, not {v:?}"));
                None
            }
        }
    }

    /// Whether a child element of that name is present with some content.
    pub fn given(&self, name: &str) -> bool {
        self.el
            .children
            .iter()
            .any(|c| c.name == name && (!c.text.trim().is_empty() || !c.children.is_empty()))
    }

    /// Problems for child elements not in `known` (each name once), and for text where only
    /// elements belong.
    pub fn known(&self, known: &[&str], p: &mut Problems) {
        let mut seen: Vec<&str> = Vec::new();
        for c in &self.el.children {
            if !known.contains(&c.name.as_str()) && !seen.contains(&c.name.as_str()) {
                seen.push(&c.name);
                p.add(
                    self.field(&c.name),
                    format!(
                        "is not an element of {} (known: {})",
                        self.el.name,
                        known.join(", ")
                    ),
                );
            }
        }
        if !self.el.text.trim().is_empty() {
            p.add(self.me(), "must contain elements, not text");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_each_element_and_references_resolve() {
        let text = "<?xml version=\"1.0\"?>\n<m:R xmlns:m=\"u\">\n <A>x &amp; &#x41;<![CDATA[<y>]]></A>\n <B/>\n</m:R>\n";
        let root = parse(text.as_bytes()).expect("well-formed");
        assert_eq!(root.name, "R");
        assert_eq!(&text[root.span.clone()], &text[22..text.len() - 1]);
        let [a, b] = &root.children[..] else {
            panic!("two children")
        };
        assert_eq!(
            &text[a.span.clone()],
            "<A>x &amp; &#x41;<![CDATA[<y>]]></A>"
        );
        assert_eq!(a.text, "x & A<y>");
        assert_eq!(&text[b.span.clone()], "<B/>");
        assert!(b.children.is_empty() && b.text.is_empty());
    }

    #[test]
    fn what_is_not_well_formed_or_declares_a_dtd_is_refused() {
        for (input, want) in [
            (
                "<R><a></b></R>",
                "is not well-formed XML (line 1): ill-formed document: expected `</a>`, but `</b>` was found",
            ),
            (
                "<R>",
                "is not well-formed XML (line 1): the document ends before <R> is closed",
            ),
            (
                "<R/><S/>",
                "is not well-formed XML (line 1): a second root element",
            ),
            (
                "<R>&xxe;</R>",
                "is not well-formed XML (line 1): &xxe; is not a character reference or one of the five predefined entities (amp, lt, gt, quot, apos)",
            ),
            (
                "<!DOCTYPE R [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><R>&x;</R>",
                "has a <!DOCTYPE> declaration; DTDs are refused so that no entity is ever expanded (remove the <!DOCTYPE ...>)",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><R/>",
                "declares encoding \"ISO-8859-1\"; only UTF-8 is accepted",
            ),
            ("", "has no root element"),
        ] {
            assert_eq!(
                parse(input.as_bytes()),
                Err(Problem::new("(document)", want)),
                "{input}"
            );
        }
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(
            parse(deep.as_bytes())
                .expect_err("too deep")
                .problem
                .starts_with("nests elements more than 32 deep")
        );
    }
}
