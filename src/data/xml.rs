//! XML for Pascal VOC annotation files, through `roxmltree` (linear time, not recursive, so
//! neither a file of 400k tags nor one nested 200k deep is a problem; a hand-written reader
//! before it was quadratic). Only what VOC needs: elements by name and their text.
//! Errors carry the line and column; DTDs are refused (VOC files have none, and entity
//! definitions are the usual way to blow up a parser).

use roxmltree::Document;
pub use roxmltree::Node;

/// Why an annotation file is not XML this reader takes.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// A document type declaration (refused: see the module's doc).
    #[error("a <!DOCTYPE> with declarations is not supported in annotation files")]
    Dtd,
    /// Not well-formed XML.
    #[error("line {line}, column {column}: {source}")]
    Syntax {
        /// 1-based line of the fault.
        line: u32,
        /// 1-based column of the fault.
        column: u32,
        /// What `roxmltree` found.
        #[source]
        source: roxmltree::Error,
    },
}

/// Parse a document. The error says where (`line L, column C`) and what.
pub fn parse(src: &str) -> Result<Document<'_>, XmlError> {
    Document::parse(src).map_err(|e| {
        let pos = e.pos();
        match e {
            roxmltree::Error::DtdDetected => XmlError::Dtd,
            source => XmlError::Syntax {
                line: pos.row,
                column: pos.col,
                source,
            },
        }
    })
}

/// The first child element named `name`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// All child elements named `name`.
pub fn children_named<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The element's own text (its text and CDATA children, not its descendants'), trimmed.
pub fn text(node: Node<'_, '_>) -> String {
    let mut s = String::new();
    for t in node.children().filter(|c| c.is_text()) {
        s.push_str(t.text().unwrap_or(""));
    }
    s.trim().to_string()
}

/// The 1-based line an element starts on.
pub fn line(node: Node<'_, '_>) -> u32 {
    node.document().text_pos_at(node.range().start).row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_comments_and_entities() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\"><b>t &amp; u</b><c/><b> 2 <![CDATA[<3]]></b></a>",
        )
        .unwrap();
        let a = doc.root_element();
        assert_eq!(a.tag_name().name(), "a");
        let bs: Vec<_> = children_named(a, "b").map(text).collect();
        assert_eq!(bs, ["t & u", "2 <3"]);
        assert!(child(a, "c").is_some());
        assert_eq!(line(child(a, "c").unwrap()), 2);
    }

    #[test]
    fn mismatched_tags_name_the_line() {
        let e = parse("<a>\n<b></c></a>").unwrap_err();
        assert!(matches!(e, XmlError::Syntax { line: 2, .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("line 2") && e.contains("'b'"), "{e}");
        assert!(parse("<a><b></b>").is_err());
        let e = parse("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>").unwrap_err();
        assert!(matches!(e, XmlError::Dtd), "{e}");
        assert!(e.to_string().contains("DOCTYPE"));
    }
}
