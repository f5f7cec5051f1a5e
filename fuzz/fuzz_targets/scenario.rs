//! The simulator's scenario parser: a script's blocks (`parse_script`) and each block's command
//! (`Command::from_str`), as `run_script` reads them before running anything.
//!
//! Properties: no panic; allocations within `Budget::READER`; an error names its line
//! (`line N: …`, N within the file); rendering the blocks (the writer `REWRITE=1` uses) and
//! parsing again gives the same blocks; a command that parsed prints (`Display`, the writer of
//! generated scripts) as text that parses to the same command.
#![no_main]

use fuzz_support::Budget;
use libfuzzer_sys::fuzz_target;
use raft_replay::sim::script::{parse_script, render_script, Command};

fn line_of(error: &str) -> usize {
    let rest = error
        .strip_prefix("line ")
        .unwrap_or_else(|| panic!("scenario error without a line: {error:?}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("scenario error without a line number: {error:?}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    Budget::READER.enforce(data.len(), || {
        let lines = text.lines().count();
        let blocks = match parse_script(text) {
            Ok(blocks) => blocks,
            Err(e) => {
                let line = line_of(&e);
                assert!(
                    line >= 1 && line <= lines.max(1),
                    "line {line} of {lines}: {e}"
                );
                return;
            }
        };
        let rendered = render_script(&blocks);
        let again = parse_script(&rendered).expect("rendered blocks parse");
        assert_eq!(again.len(), blocks.len());
        for (a, b) in again.iter().zip(&blocks) {
            assert_eq!(
                (&a.comments, &a.command, &a.expected),
                (&b.comments, &b.command, &b.expected)
            );
        }
        for b in &blocks {
            assert!(b.line >= 1 && b.line <= lines);
            if let Ok(command) = b.command.parse::<Command>() {
                let printed = command.to_string();
                let back: Command = printed.parse().unwrap_or_else(|e| {
                    panic!("{printed:?} (from {:?}) does not parse: {e}", b.command)
                });
                assert_eq!(back, command, "{printed:?} from {:?}", b.command);
            }
        }
    });
});
