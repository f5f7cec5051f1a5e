//! The `raft-replay` command: parses arguments, calls the library, renders its reports.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
