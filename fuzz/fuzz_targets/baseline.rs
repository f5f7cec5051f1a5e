//! The gate's baseline lock reader (`gate::baseline::parse`).
//!
//! Properties: no panic; allocations within `Budget::READER`; a lock that parsed renders (the
//! gate's writer) and parses back to itself, and rendering is a fixed point; an error that is not
//! JSON of a baseline's shape names its line and column.
#![no_main]

use fuzz_support::Budget;
use libfuzzer_sys::fuzz_target;
use raft_replay::gate::baseline::{diff, parse, render, BaselineError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    Budget::READER.enforce(data.len(), || match parse(text) {
        Ok(baseline) => {
            let rendered = render(&baseline);
            let again = parse(&rendered).expect("a rendered baseline parses");
            assert_eq!(again, baseline);
            assert_eq!(render(&again), rendered);
            assert!(diff(&baseline, &again).is_empty());
        }
        Err(BaselineError::NotABaseline(e)) => {
            assert!(e.line() >= 1, "baseline error without a line: {e}");
        }
        Err(BaselineError::Format { .. }) => {}
    });
});
