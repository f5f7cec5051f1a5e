//! The gate's JUnit XML is well-formed and holds the testcases CI systems read: checked with a
//! small strict XML parser (one root, nesting, quoted attributes, the predefined entities only),
//! then for structure (testsuites ⊃ testsuite ⊃ testcase [⊃ failure]) and counts.

mod common;

#[derive(Debug)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

impl<'a> Parser<'a> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn skip_ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.s[self.at..].starts_with(text.as_bytes()) {
            self.at += text.len();
            true
        } else {
            false
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.at;
        while self.at < self.s.len() && is_name(self.s[self.at]) {
            self.at += 1;
        }
        if start == self.at {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    /// Character data up to `stop`, with entities checked and decoded.
    fn chars(&mut self, stop: u8) -> Result<String, String> {
        let mut out = String::new();
        while self.at < self.s.len() && self.s[self.at] != stop {
            match self.s[self.at] {
                b'<' => return self.err("raw '<' in character data"),
                b'&' => {
                    let end = self.s[self.at..]
                        .iter()
                        .position(|b| *b == b';')
                        .ok_or_else(|| format!("unterminated entity at {}", self.at))?;
                    let entity = std::str::from_utf8(&self.s[self.at + 1..self.at + end]).unwrap();
                    out.push(match entity {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        e if e.starts_with('#') => '?',
                        _ => return self.err(&format!("unknown entity &{entity};")),
                    });
                    self.at += end + 1;
                }
                _ => {
                    let rest =
                        std::str::from_utf8(&self.s[self.at..]).map_err(|e| e.to_string())?;
                    let c = rest.chars().next().unwrap();
                    if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') {
                        return self.err("control character");
                    }
                    out.push(c);
                    self.at += c.len_utf8();
                }
            }
        }
        Ok(out)
    }

    fn element(&mut self) -> Result<Node, String> {
        if !self.eat("<") {
            return self.err("expected '<'");
        }
        let name = self.name()?;
        let mut node = Node {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        };
        loop {
            self.skip_ws();
            if self.eat("/>") {
                return Ok(node);
            }
            if self.eat(">") {
                break;
            }
            let attr = self.name()?;
            if !self.eat("=\"") {
                return self.err("expected =\"");
            }
            let value = self.chars(b'"')?;
            if !self.eat("\"") {
                return self.err("unterminated attribute");
            }
            if node.attrs.iter().any(|(n, _)| *n == attr) {
                return self.err("duplicate attribute");
            }
            node.attrs.push((attr, value));
        }
        loop {
            self.chars(b'<')?;
            if self.at >= self.s.len() {
                return self.err(&format!("<{}> never closed", node.name));
            }
            if self.eat("</") {
                let close = self.name()?;
                if close != node.name {
                    return self.err(&format!("</{close}> closes <{}>", node.name));
                }
                self.skip_ws();
                if !self.eat(">") {
                    return self.err("expected '>'");
                }
                return Ok(node);
            }
            node.children.push(self.element()?);
        }
    }

    fn document(mut self) -> Result<Node, String> {
        self.skip_ws();
        if self.eat("<?xml") {
            let end = self.s[self.at..]
                .windows(2)
                .position(|w| w == b"?>")
                .ok_or("unterminated XML declaration")?;
            self.at += end + 2;
        }
        self.skip_ws();
        let root = self.element()?;
        self.skip_ws();
        if self.at != self.s.len() {
            return self.err("content after the root element");
        }
        Ok(root)
    }
}

fn parse(xml: &str) -> Result<Node, String> {
    Parser {
        s: xml.as_bytes(),
        at: 0,
    }
    .document()
}

#[test]
fn the_parser_rejects_what_is_not_xml() {
    for bad in [
        "<a>",
        "<a></b>",
        "<a x=1/>",
        "<a>&bogus;</a>",
        "<a>1 < 2</a>",
        "<a/><b/>",
        "<a x=\"1\" x=\"2\"/>",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert!(parse("<?xml version=\"1.0\"?>\n<a x=\"&amp;\"><b/>t&lt;</a>\n").is_ok());
}

#[test]
fn junit_of_every_capture_parses_and_holds_testcases() {
    for capture in common::captures() {
        let members = common::members(&capture);
        // A 3.4 capture cannot go to 3.6 (the path skips 3.5, the db has no term); a 3.5 one can.
        let from_3_4 = common::manifest(&capture)["etcd_version"]
            .as_str()
            .unwrap()
            .starts_with("3.4.");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gate.xml");
        let baseline = common::repo_dir()
            .join("tests/baselines")
            .join(format!("{capture}.json"));
        let mut args: Vec<String> = vec!["gate".into()];
        args.extend(members.iter().map(|m| m.to_str().unwrap().to_string()));
        for a in [
            "--target",
            "3.6",
            "--junit",
            file.to_str().unwrap(),
            "--baseline",
            baseline.to_str().unwrap(),
        ] {
            args.push(a.into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = common::run_cli(&args);
        assert_eq!(code, if from_3_4 { 1 } else { 0 }, "{capture}: {stderr}");
        let xml = std::fs::read_to_string(&file).unwrap();
        let root = parse(&xml).unwrap_or_else(|e| panic!("{capture}: {e}\n{xml}"));
        assert_eq!(root.name, "testsuites");
        let mut cases = 0;
        let mut failures = 0;
        let mut suite_names = Vec::new();
        for suite in &root.children {
            assert_eq!(suite.name, "testsuite");
            suite_names.push(suite.attr("name").unwrap().to_string());
            let tests: usize = suite.attr("tests").unwrap().parse().unwrap();
            assert_eq!(tests, suite.children.len());
            let mut suite_failures = 0;
            for case in &suite.children {
                assert_eq!(case.name, "testcase");
                assert!(case.attr("classname").is_some() && case.attr("name").is_some());
                for f in &case.children {
                    assert_eq!(f.name, "failure");
                    assert!(f.attr("message").is_some());
                    suite_failures += 1;
                }
            }
            assert_eq!(suite.attr("failures").unwrap(), suite_failures.to_string());
            cases += tests;
            failures += suite_failures;
        }
        assert_eq!(root.attr("tests").unwrap(), cases.to_string());
        assert_eq!(root.attr("failures").unwrap(), failures.to_string());
        // One upgrade testcase per member × rule; the skip 3.4 → 3.6 fails for every member,
        // 3.5 → 3.6 for none.
        let upgrade = &root.children[0];
        assert_eq!(upgrade.attr("name"), Some("upgrade to etcd 3.6"));
        let blocked: Vec<&Node> = upgrade
            .children
            .iter()
            .filter(|c| !c.children.is_empty())
            .collect();
        if from_3_4 {
            assert_eq!(blocked.len(), members.len());
            assert!(blocked
                .iter()
                .all(|c| c.attr("name") == Some("version.upgrade_path")));
        } else {
            assert!(blocked.is_empty(), "{capture}");
        }
        assert!(suite_names.iter().any(|n| n.starts_with("invariants ")));
        assert!(suite_names.iter().any(|n| n.starts_with("baseline ")));
        assert!(cases >= members.len() * 9);
    }
}
