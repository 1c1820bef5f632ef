//! A small tmpfs mounted by a test (needs root; `mount` returns `None`
//! elsewhere, and the test says so and skips), unmounted on drop.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test and unmounted on drop.
pub struct SmallFs {
    pub dir: PathBuf,
}

impl SmallFs {
    pub fn mount(at: &Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| SmallFs {
            dir: at.to_path_buf(),
        })
    }

    /// [`SmallFs::mount`], saying on stderr that the test is skipped when
    /// it cannot mount.
    pub fn mount_or_skip(at: &Path, size: &str) -> Option<SmallFs> {
        let fs = SmallFs::mount(at, size);
        if fs.is_none() {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        }
        fs
    }

    /// Fills the filesystem with `filler` until a write fails.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&chunk[..512]);
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
