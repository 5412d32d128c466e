//! `--help` works on every command, exits 0, and documents the exit statuses scripts rely on.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stdout, walden};

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["log", "--help"],
        &["log", "dump", "--help"],
        &["log", "verify", "--help"],
        &["log", "inspect", "--help"],
        &["help", "log"],
    ] {
        let out = walden(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage: walden"), "{args:?}");
    }
}

#[test]
fn verify_help_documents_exit_codes() {
    let text = stdout(&walden(&["log", "verify", "--help"]));
    assert!(text.contains("0  clean"), "{text}");
    assert!(text.contains("1  corruption"), "{text}");
    assert!(text.contains("2  torn tail"), "{text}");
    assert!(text.contains("3  error"), "{text}");
}

#[test]
fn dump_help_lists_formats_and_recovery_modes() {
    let text = stdout(&walden(&["log", "dump", "--help"]));
    for word in [
        "--from-lsn",
        "--to-lsn",
        "--limit",
        "--follow",
        "json",
        "tolerate-torn-tail",
        "absolute",
        "point-in-time",
        "skip-corrupt",
    ] {
        assert!(text.contains(word), "{word} missing from: {text}");
    }
}
