//! Fitting `--max-connections` to the process's open-file limit.
//!
//! Every connection takes file descriptors (a plain RESP connection two), and a server out
//! of them fails `accept` for everyone: the very lockout the connection limit is there to
//! prevent. So at startup the soft `RLIMIT_NOFILE` is raised, up to the hard limit, to what
//! `--max-connections` needs; if even the hard limit is short, the limit in force is lowered
//! to what fits, with a warning that says so (as Redis does with `maxclients`).

use crate::connections::REFUSING_MAX;

/// Descriptors a served connection may hold at most (a plain RESP connection: its socket
/// and the second handle the sync thread answers through).
const FDS_PER_CONNECTION: u64 = 2;

/// Descriptors kept for everything else: the log's segments and directory, checkpoints,
/// listeners, the runtime's epoll and event descriptors, standard streams.
const FDS_RESERVED: u64 = 256;

/// What `max` connections need, refusals in progress included.
fn needed(max: u64) -> u64 {
    max.saturating_mul(FDS_PER_CONNECTION)
        .saturating_add(REFUSING_MAX)
        .saturating_add(FDS_RESERVED)
}

/// The most connections `limit` open files allow (at least 1).
fn fitting(limit: u64) -> u64 {
    (limit.saturating_sub(REFUSING_MAX + FDS_RESERVED) / FDS_PER_CONNECTION).max(1)
}

/// Raises the soft open-file limit towards what `max` connections need; returns the most
/// connections to allow (`max`, or fewer when the limit cannot be raised far enough).
pub(crate) fn fit(max: usize) -> usize {
    let want = needed(max as u64);
    let Some(limit) = raise_to(want) else {
        return max;
    };
    if limit >= want {
        return max;
    }
    let allowed = fitting(limit).min(max as u64) as usize;
    tracing::warn!(
        requested = max,
        allowed,
        open_file_limit = limit,
        needed = want,
        "--max-connections lowered to what the open-file limit allows; raise it (ulimit -n, \
         or LimitNOFILE= in a systemd unit) to serve more"
    );
    allowed
}

/// Raises the soft `RLIMIT_NOFILE` to `want`, or as far as the hard limit lets it; returns
/// the soft limit in force after (None: unlimited or unknown).
#[cfg(target_os = "linux")]
fn raise_to(want: u64) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let soft = now.current?;
    if soft >= want {
        return Some(soft);
    }
    let target = now.maximum.map_or(want, |hard| want.min(hard));
    if target <= soft {
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = soft, to = target, "raised the open-file limit");
            Some(target)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn raise_to(_want: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a limit allows always fits in it, and asking for what fits needs no more.
    #[test]
    fn the_connections_a_limit_allows_fit_in_it() {
        for limit in [0, 1, 320, 321, 1024, 4096, 20_000, 1 << 20] {
            let allowed = fitting(limit);
            assert!(allowed >= 1);
            if limit >= needed(1) {
                assert!(
                    needed(allowed) <= limit,
                    "limit {limit}: {allowed} need more"
                );
                assert!(
                    needed(allowed + 1) > limit,
                    "limit {limit}: {allowed} is not the most"
                );
            }
        }
        assert_eq!(fitting(1024), (1024 - REFUSING_MAX - FDS_RESERVED) / 2);
    }

    /// A limit already high enough is left alone and `max` kept.
    #[test]
    fn a_sufficient_limit_keeps_max() {
        assert_eq!(fit(1), 1);
    }
}
