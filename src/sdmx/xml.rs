//! A small XML writer: elements opened and closed in order, text and attributes escaped.

use std::fmt::Write;

/// An XML document being written, indented: an element with child elements closes on its own
/// line.
pub(super) struct Xml {
    out: String,
    /// The open elements, each with whether it has child elements yet.
    open: Vec<(&'static str, bool)>,
    /// Whether the last start tag is still open for attributes (`<a x="1"`).
    in_tag: bool,
}

impl Xml {
    pub(super) fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            open: Vec::new(),
            in_tag: false,
        }
    }

    fn end_start_tag(&mut self) {
        if self.in_tag {
            self.out.push('>');
            self.in_tag = false;
        }
    }

    fn indent(&mut self) {
        self.out.push('\n');
        for _ in 0..self.open.len() {
            self.out.push_str("  ");
        }
    }

    /// Opens `<name`; attributes may follow.
    pub(super) fn open(&mut self, name: &'static str) -> &mut Self {
        self.end_start_tag();
        if let Some(parent) = self.open.last_mut() {
            parent.1 = true;
        }
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.open.push((name, false));
        self.in_tag = true;
        self
    }

    /// An attribute of the element just opened.
    pub(super) fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(self.in_tag, "attribute {name} after the start tag");
        let _ = write!(self.out, " {name}=\"");
        escape(&mut self.out, value, true);
        self.out.push('"');
        self
    }

    /// Text inside the element just opened.
    pub(super) fn text(&mut self, text: &str) -> &mut Self {
        self.end_start_tag();
        escape(&mut self.out, text, false);
        self
    }

    /// Closes the innermost element.
    pub(super) fn close(&mut self) -> &mut Self {
        let Some((name, children)) = self.open.pop() else {
            return self;
        };
        if self.in_tag {
            self.out.push_str("/>");
            self.in_tag = false;
            return self;
        }
        if children {
            self.indent();
        }
        let _ = write!(self.out, "</{name}>");
        self
    }

    /// `<name>text</name>`.
    pub(super) fn leaf(&mut self, name: &'static str, text: &str) -> &mut Self {
        self.open(name).text(text).close()
    }

    /// `<name xml:lang="en">text</name>`.
    pub(super) fn name_en(&mut self, name: &'static str, text: &str) -> &mut Self {
        self.open(name).attr("xml:lang", "en").text(text).close()
    }

    /// Elements that go inside a document written elsewhere, indented `depth` levels.
    pub(super) fn fragment(depth: usize) -> Self {
        Self {
            out: String::new(),
            open: vec![("", true); depth],
            in_tag: false,
        }
    }

    /// The fragment's text (its elements closed; the levels it was given stay open).
    pub(super) fn finish_fragment(mut self) -> String {
        self.end_start_tag();
        self.out
    }

    /// The document so far, its last start tag ended, and the closing tags of everything
    /// still open: what goes before and after content written elsewhere.
    pub(super) fn split(mut self) -> (String, String) {
        self.end_start_tag();
        let before = std::mem::take(&mut self.out);
        while !self.open.is_empty() {
            if let Some(last) = self.open.last_mut() {
                last.1 = true;
            }
            self.close();
        }
        self.out.push('\n');
        (before, self.out)
    }

    /// The document, every element closed.
    pub(super) fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out.push('\n');
        self.out
    }
}

fn escape(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // Characters XML 1.0 cannot carry are never in the schema's text; drop any.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}
