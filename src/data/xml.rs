//! A small XML reader, enough for Pascal VOC annotation files: elements, text, attributes
//! skipped, comments / declarations / CDATA handled, entities `&lt; &gt; &amp; &quot; &apos;`.

/// An element: its name, text content (concatenated, trimmed) and child elements.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    /// All children named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parse a document and return its root element. Errors carry the line number.
pub fn parse(src: &str) -> Result<Element, String> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut stack: Vec<Element> = vec![Element::default()]; // synthetic document node
    let line = |pos: usize| src[..pos.min(src.len())].matches('\n').count() + 1;
    while i < b.len() {
        if b[i] == b'<' {
            let rest = &src[i..];
            if rest.starts_with("<!--") {
                let end = rest
                    .find("-->")
                    .ok_or(format!("line {}: unclosed comment", line(i)))?;
                i += end + 3;
            } else if rest.starts_with("<![CDATA[") {
                let end = rest
                    .find("]]>")
                    .ok_or(format!("line {}: unclosed CDATA", line(i)))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&rest[9..end]);
                }
                i += end + 3;
            } else if rest.starts_with("<?") || rest.starts_with("<!") {
                let end = rest
                    .find('>')
                    .ok_or(format!("line {}: unclosed declaration", line(i)))?;
                i += end + 1;
            } else if let Some(close) = rest.strip_prefix("</") {
                let end = close
                    .find('>')
                    .ok_or(format!("line {}: unclosed tag", line(i)))?;
                let name = close[..end].trim();
                let el = stack.pop().filter(|_| !stack.is_empty()).ok_or(format!(
                    "line {}: closing tag </{name}> without an opening tag",
                    line(i)
                ))?;
                if el.name != name {
                    return Err(format!(
                        "line {}: expected </{}>, found </{name}>",
                        line(i),
                        el.name
                    ));
                }
                let mut el = el;
                el.text = el.text.trim().to_string();
                stack.last_mut().expect("document node").children.push(el);
                i += 2 + end + 1;
            } else {
                let end = rest
                    .find('>')
                    .ok_or(format!("line {}: unclosed tag", line(i)))?;
                let inner = &rest[1..end];
                let self_closing = inner.ends_with('/');
                let inner = inner.trim_end_matches('/');
                let name: String = inner
                    .split(|c: char| c.is_whitespace())
                    .next()
                    .unwrap_or("")
                    .to_string();
                if name.is_empty() {
                    return Err(format!("line {}: empty tag name", line(i)));
                }
                let el = Element {
                    name,
                    ..Default::default()
                };
                if self_closing {
                    stack.last_mut().expect("document node").children.push(el);
                } else {
                    stack.push(el);
                }
                i += end + 1;
            }
        } else {
            let end = src[i..].find('<').map_or(b.len(), |e| i + e);
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&unescape(&src[i..end]));
            }
            i = end;
        }
    }
    if stack.len() != 1 {
        let open = stack.last().map(|e| e.name.clone()).unwrap_or_default();
        return Err(format!("end of file inside <{open}>"));
    }
    let mut doc = stack.pop().expect("document node");
    match doc.children.len() {
        1 => Ok(doc.children.pop().expect("one child")),
        0 => Err("no root element".into()),
        _ => Err("more than one root element".into()),
    }
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_comments_and_entities() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\"><b>t &amp; u</b><c/><b> 2 </b></a>",
        )
        .unwrap();
        assert_eq!(doc.name, "a");
        let bs: Vec<_> = doc.children_named("b").map(|b| b.text.as_str()).collect();
        assert_eq!(bs, ["t & u", "2"]);
        assert!(doc.child("c").is_some());
    }

    #[test]
    fn mismatched_tags_name_the_line() {
        let e = parse("<a>\n<b></c></a>").unwrap_err();
        assert!(e.contains("line 2") && e.contains("</b>"), "{e}");
        assert!(parse("<a><b></b>").unwrap_err().contains("<a>"));
    }
}
