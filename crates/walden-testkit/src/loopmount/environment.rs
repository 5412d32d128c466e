//! What a real-kernel test needs from the machine, and the loud refusal when it is missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set to `1` to skip the real-kernel tests explicitly where they cannot run (they still
/// print the banner). Unset, such a test fails: it never passes silently.
pub const SKIP_VAR: &str = "WALDEN_SKIP_REAL_KERNEL";

/// External programs, by absolute path.
#[derive(Debug, Clone)]
pub struct Tools {
    pub(crate) mkfs_ext4: PathBuf,
    pub(crate) losetup: PathBuf,
    pub(crate) mount: PathBuf,
    pub(crate) umount: PathBuf,
    pub(crate) xfs_io: PathBuf,
}

/// Why the machine cannot run a real-kernel test.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// The program `name` on `PATH` or in the usual system directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The tools, if this is Linux, the process is root, loop devices exist and mkfs.ext4,
/// losetup, mount, umount and xfs_io are installed; else why not.
pub fn check_environment() -> Result<Tools, Unavailable> {
    if !cfg!(target_os = "linux") {
        return Err(Unavailable("not Linux".into()));
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(Unavailable(format!(
                "not root (effective uid {uid}); mount and losetup need root"
            )))
        }
        None => {
            return Err(Unavailable(
                "cannot read the effective uid from /proc/self/status".into(),
            ))
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(Unavailable(
            "no /dev/loop-control: this kernel or container has no loop devices".into(),
        ));
    }
    let tool = |name: &str, package: &str| {
        find_tool(name)
            .ok_or_else(|| Unavailable(format!("`{name}` not found (Debian package {package})")))
    };
    Ok(Tools {
        mkfs_ext4: tool("mkfs.ext4", "e2fsprogs")?,
        losetup: tool("losetup", "mount")?,
        mount: tool("mount", "mount")?,
        umount: tool("umount", "mount")?,
        xfs_io: tool("xfs_io", "xfsprogs")?,
    })
}

/// Says loudly that `test` cannot run here, then fails it, or returns when [`SKIP_VAR`]
/// asks for a skip explicitly. The banner goes straight to the stderr file descriptor: the
/// test harness captures `eprintln!` of passing tests, and a skip must never be silent.
pub fn unavailable(test: &str, why: &Unavailable) {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    let rule = "=".repeat(78);
    let verdict = if skip {
        format!("SKIPPED because {SKIP_VAR}=1 is set: this test checked NOTHING.")
    } else {
        format!("FAILING. Set {SKIP_VAR}=1 to skip it explicitly.")
    };
    let banner = format!(
        "\n{rule}\nREAL-KERNEL TEST `{test}` CANNOT RUN HERE\n  reason: {}\n  needs: root, loop \
         devices, mkfs.ext4 (e2fsprogs), losetup, mount and umount (mount),\n  xfs_io (xfsprogs; \
         .ci/run installs it).\n  {verdict}\n{rule}\n",
        why.0
    );
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
    assert!(skip, "real-kernel test `{test}` cannot run: {}", why.0);
}

/// The tools, or `None` after the banner when the test is explicitly skipped (it fails in
/// [`unavailable`] otherwise).
pub fn environment_or_skip(test: &str) -> Option<Tools> {
    match check_environment() {
        Ok(tools) => Some(tools),
        Err(why) => {
            unavailable(test, &why);
            None
        }
    }
}

/// Runs a program to completion; its trimmed stdout, or why it failed (with its output).
pub fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{shown}` could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `p` as UTF-8 (test paths are).
pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().expect("a test path is UTF-8")
}
