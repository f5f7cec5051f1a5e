//! A minimal JUnit XML writer (the schema CI systems read: testsuites/testsuite/testcase/failure).

pub struct TestCase {
    pub class_name: String,
    pub name: String,
    /// `(message, body)` when the case failed.
    pub failure: Option<(String, String)>,
}

pub struct TestSuite {
    pub name: String,
    pub cases: Vec<TestCase>,
}

/// The invariant a finding kind belongs to (`other` for kinds no invariant lists).
pub fn invariant_of(kind: &str) -> &'static str {
    crate::check::INVARIANTS
        .iter()
        .find(|inv| inv.kinds.contains(&kind))
        .map(|inv| inv.name)
        .unwrap_or("other")
}

/// One test case per invariant of the catalogue (plus `other` when a finding belongs to none),
/// failed by the failure-severity findings of that invariant: a green case is an invariant that
/// was checked and held, so CI dashboards show what passed, not only what failed.
pub fn invariant_cases(class_name: &str, findings: &[crate::check::Finding]) -> Vec<TestCase> {
    let mut names: Vec<&str> = crate::check::INVARIANTS
        .iter()
        .map(|inv| inv.name)
        .collect();
    if findings.iter().any(|f| invariant_of(f.kind) == "other") {
        names.push("other");
    }
    names
        .into_iter()
        .map(|name| {
            let failing: Vec<String> = findings
                .iter()
                .filter(|f| invariant_of(f.kind) == name && f.severity.is_failure())
                .map(|f| f.to_string())
                .collect();
            TestCase {
                class_name: class_name.to_string(),
                name: name.to_string(),
                failure: (!failing.is_empty())
                    .then(|| (format!("{} finding(s)", failing.len()), failing.join("\n"))),
            }
        })
        .collect()
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

pub fn render(suites: &[TestSuite]) -> String {
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites
        .iter()
        .map(|s| s.cases.iter().filter(|c| c.failure.is_some()).count())
        .sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"raft-replay\" tests=\"{total}\" failures=\"{failures}\">\n"
    );
    for suite in suites {
        let suite_failures = suite.cases.iter().filter(|c| c.failure.is_some()).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">\n",
            escape(&suite.name),
            suite.cases.len(),
            suite_failures
        ));
        for case in &suite.cases {
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&case.class_name),
                escape(&case.name)
            );
            match &case.failure {
                None => xml.push_str(&format!("{head}/>\n")),
                Some((message, body)) => xml.push_str(&format!(
                    "{head}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(message),
                    escape(body)
                )),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
