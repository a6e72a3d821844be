//! `jobd serve` raises its soft open-file limit to the hard limit at start (issue #16, item 4):
//! started with a soft limit of 256, it runs with the hard one. Its own test binary: it lowers
//! its own limit so that jobd inherits it.

use jobd_test_support::server::Server;

/// The soft and hard "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|line| line.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    if hard <= 256 {
        println!("the hard limit is {hard}: nothing to raise");
        return;
    }
    rlimit::setrlimit(rlimit::Resource::NOFILE, 256, hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let (soft, hard) = open_file_limits(server.pid());
    assert_eq!(soft, hard, "jobd runs with its soft limit at the hard one");
}
