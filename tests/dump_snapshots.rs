//! insta snapshots of `dump` on the bundled corpus: any change in how we decode or render real
//! etcd data shows up as a reviewable diff (`cargo insta review`).

mod common;

fn head_and_tail(text: &str, head: usize, tail: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= head + tail {
        return text.to_string();
    }
    let mut out = lines[..head].join("\n");
    out.push_str(&format!("\n… {} lines …\n", lines.len() - head - tail));
    out.push_str(&lines[lines.len() - tail..].join("\n"));
    out
}

#[test]
fn dump_snapshots_of_every_member() {
    for (capture, member) in common::all_members() {
        let name = member.file_name().unwrap().to_string_lossy().into_owned();
        let path = member.to_str().unwrap();
        let (code, text, _) = common::run_cli(&["dump", path]);
        assert_eq!(code, 0);
        insta::assert_snapshot!(
            format!("{capture}-{name}-text"),
            head_and_tail(&text, 60, 20)
        );
        let (code, json, _) = common::run_cli(&["dump", path, "--format", "json"]);
        assert_eq!(code, 0);
        insta::assert_snapshot!(
            format!("{capture}-{name}-json"),
            head_and_tail(&json, 40, 10)
        );
        let (code, summary, _) = common::run_cli(&["dump", path, "--summary", "--format", "json"]);
        assert_eq!(code, 0);
        let mut summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
        // Paths depend on the tempdir the corpus was unpacked into.
        summary["path"] = serde_json::Value::Null;
        summary["wal_dir"] = serde_json::Value::Null;
        insta::assert_json_snapshot!(format!("{capture}-{name}-summary"), summary);
    }
}
