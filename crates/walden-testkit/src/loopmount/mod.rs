//! A loop-mounted ext4 image (or a tmpfs) for real-kernel crash tests, unmounted and
//! detached on drop whatever the test left, with `xfs_io -x -c shutdown` as a power cut:
//! the file system drops everything not yet on the device at once (ENGINEERING.md section
//! 3, "Real-kernel checks"). A small image or tmpfs also gives a real `ENOSPC`.
//!
//! Such a test needs root, loop devices, mkfs.ext4, losetup, mount and xfs_io. It starts
//! with [`environment_or_skip`]: where anything is missing the test fails with a banner
//! saying why, unless `WALDEN_SKIP_REAL_KERNEL=1` ([`SKIP_VAR`]) is set, which skips it
//! (still with the banner). It never passes silently.

mod environment;

pub use environment::{
    check_environment, environment_or_skip, find_tool, run, unavailable, Tools, Unavailable,
    SKIP_VAR,
};

use environment::path_str;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A mounted file system: a loop-mounted image, or a tmpfs. Dropping it unmounts and
/// detaches, best effort, whatever state the test left.
#[derive(Debug)]
pub struct Mount {
    tools: Tools,
    target: PathBuf,
    image: Option<PathBuf>,
    loop_dev: Option<String>,
    mounted: bool,
}

impl Mount {
    /// Makes a sparse `size_bytes` image at `image`, formats it ext4 (4 KiB blocks, no
    /// reserved blocks) and mounts it at `target` (created if missing).
    pub fn ext4(
        tools: &Tools,
        image: &Path,
        target: &Path,
        size_bytes: u64,
    ) -> Result<Mount, Unavailable> {
        std::fs::File::create(image)
            .and_then(|f| f.set_len(size_bytes))
            .map_err(|e| {
                Unavailable(format!("cannot create the image {}: {e}", image.display()))
            })?;
        run(
            &tools.mkfs_ext4,
            &["-q", "-F", "-b", "4096", "-m", "0", path_str(image)],
        )
        .map_err(Unavailable)?;
        let mut m = Mount::unmounted(tools, target, Some(image))?;
        m.attach_and_mount().map_err(Unavailable)?;
        Ok(m)
    }

    /// Mounts a tmpfs of `size_bytes` at `target` (created if missing).
    pub fn tmpfs(tools: &Tools, target: &Path, size_bytes: u64) -> Result<Mount, Unavailable> {
        let mut m = Mount::unmounted(tools, target, None)?;
        let size = format!("size={size_bytes}");
        run(
            &tools.mount,
            &["-t", "tmpfs", "-o", &size, "tmpfs", path_str(target)],
        )
        .map_err(Unavailable)?;
        m.mounted = true;
        Ok(m)
    }

    fn unmounted(tools: &Tools, target: &Path, image: Option<&Path>) -> Result<Mount, Unavailable> {
        std::fs::create_dir_all(target).map_err(|e| {
            Unavailable(format!(
                "cannot create the mount point {}: {e}",
                target.display()
            ))
        })?;
        Ok(Mount {
            tools: tools.clone(),
            target: target.to_path_buf(),
            image: image.map(Path::to_path_buf),
            loop_dev: None,
            mounted: false,
        })
    }

    /// Where it is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Attaches the image to a fresh loop device and mounts it (the journal replays here).
    pub fn attach_and_mount(&mut self) -> Result<(), String> {
        let image = self.image.clone().ok_or("not an image mount")?;
        let dev = run(&self.tools.losetup, &["--find", "--show", path_str(&image)])?;
        self.loop_dev = Some(dev.clone());
        run(
            &self.tools.mount,
            &["-t", "ext4", &dev, path_str(&self.target)],
        )?;
        self.mounted = true;
        Ok(())
    }

    /// Unmounts (retrying for five seconds while a killed process lets go of the file
    /// system), and detaches the loop device so no cache of the old device outlives the
    /// "power cut".
    pub fn unmount_and_detach(&mut self) -> Result<(), String> {
        if self.mounted {
            let mut last = Ok(String::new());
            for _ in 0..50 {
                last = run(&self.tools.umount, &[path_str(&self.target)]);
                if last.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last?;
            self.mounted = false;
        }
        if let Some(dev) = self.loop_dev.take() {
            run(&self.tools.losetup, &["-d", &dev])?;
        }
        Ok(())
    }

    /// Cuts the power: `xfs_io -x -c shutdown` (`flush_log` adds `-f`: commit the journal
    /// first; file data not yet written back is dropped either way).
    pub fn shutdown(&self, flush_log: bool) -> Result<(), String> {
        let command = if flush_log { "shutdown -f" } else { "shutdown" };
        run(
            &self.tools.xfs_io,
            &["-x", "-c", command, path_str(&self.target)],
        )
        .map(|_| ())
    }

    /// Bytes available to files, as df says.
    pub fn available_bytes(&self) -> Result<u64, String> {
        let df = find_tool("df").ok_or("`df` not found")?;
        let out = run(&df, &["-B1", "--output=avail", path_str(&self.target)])?;
        let last = out.lines().last().unwrap_or_default().trim();
        last.parse()
            .map_err(|e| format!("df printed {last:?} as the available bytes: {e}"))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_and_detach() {
            eprintln!(
                "loopmount: cleanup of {} failed ({e}); unmounting lazily",
                self.target.display()
            );
            if self.mounted {
                let _ = run(&self.tools.umount, &["-l", path_str(&self.target)]);
            }
            if let Some(dev) = self.loop_dev.take() {
                let _ = run(&self.tools.losetup, &["-d", &dev]);
            }
        }
    }
}
