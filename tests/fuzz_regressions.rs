//! Inputs the fuzz targets (`fuzz/`, `make fuzz`) failed on, minimised, as plain tests: each
//! asserts the property the target checks, on the input that broke it.

use raft_replay::sim::script::{parse_script, render_script, Block};

/// What `render_script` writes, `parse_script` reads back as the same blocks (fuzz target
/// `scenario`): the writer `REWRITE=1` uses must not change a script it did not run.
fn assert_render_round_trips(text: &str) -> Vec<Block> {
    let blocks = parse_script(text).expect("the script parses");
    let rendered = render_script(&blocks);
    let again = parse_script(&rendered)
        .unwrap_or_else(|e| panic!("rendered script does not parse ({e}): {rendered:?}"));
    let strip = |b: &[Block]| -> Vec<(Vec<String>, String, String)> {
        b.iter()
            .map(|b| (b.comments.clone(), b.command.clone(), b.expected.clone()))
            .collect()
    };
    assert_eq!(strip(&again), strip(&blocks), "rendered: {rendered:?}");
    blocks
}

#[test]
fn an_expected_line_ending_in_a_carriage_return_renders_back_unchanged() {
    // `str::lines` drops one `\r` before each `\n`: "x\r\r\n" is the line "x\r".
    let blocks =
        assert_render_round_trips("stabilize\n----\nn1: leader\r\r\n# c\r\r\n\nnext\r\n----\n");
    assert_eq!(blocks[0].expected, "n1: leader\r\n# c\r");
    assert_eq!(blocks[1].command, "next");
}

#[test]
fn a_comment_line_ending_in_a_carriage_return_renders_back_unchanged() {
    let blocks = assert_render_round_trips("# header\r\r\nstabilize\n----\n");
    assert_eq!(blocks[0].comments, vec!["# header\r".to_string()]);
}

#[test]
fn an_indented_hash_line_is_a_comment_not_a_command() {
    // The command is the line trimmed: an indented `#…` line would be the command `#…`, which
    // renders at the start of a line — a comment when read back.
    let blocks = assert_render_round_trips("  # indented note\nstabilize\n----\nok\n");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].command, "stabilize");
    assert_eq!(blocks[0].comments, vec!["  # indented note".to_string()]);
}
