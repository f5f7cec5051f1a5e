fn main() {
    std::process::exit(raft_replay::cli::main());
}
