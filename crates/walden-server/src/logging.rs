//! Logging through `tracing` to stderr (stdout carries only the `listening on` line).

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (or a subscriber the embedding program
/// installed first) leave it as it is.
pub fn init(format: LogFormat, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
