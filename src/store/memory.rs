//! How much memory this process may use, for the default page cache:
//! MemAvailable and the limits of the cgroups it is in (v1 and v2).

use std::path::Path;

use super::{MAX_DEFAULT_CACHE_MIB, MAX_DEFAULT_SERVE_CACHE_MIB, MIN_CACHE_MIB};

/// The default cache: an eighth of the memory this process may use (the
/// cgroup limit or MemAvailable, whichever is smaller), between
/// [`MIN_CACHE_MIB`] and [`MAX_DEFAULT_CACHE_MIB`]. A 1 GiB cache under a
/// 256 MiB memory limit was OOM-killed; an eighth leaves room for the
/// allocator's overhead, a batch's sort buffer and the rest of the process.
pub fn default_cache_mib() -> u64 {
    eighth_of(available_bytes(), MAX_DEFAULT_CACHE_MIB)
}

/// The default cache of `kvr serve`: the same eighth, up to
/// [`MAX_DEFAULT_SERVE_CACHE_MIB`].
pub fn default_serve_cache_mib() -> u64 {
    eighth_of(available_bytes(), MAX_DEFAULT_SERVE_CACHE_MIB)
}

/// The memory this process may use: its cgroups' limit or MemAvailable,
/// whichever is smaller (8 GiB when neither can be read).
pub fn available_bytes() -> u64 {
    memory_available_bytes().unwrap_or(8 << 30)
}

/// An eighth of `available` bytes in MiB, within [`MIN_CACHE_MIB`]..=`max`.
fn eighth_of(available: u64, max: u64) -> u64 {
    (available / 8 / (1 << 20)).clamp(MIN_CACHE_MIB, max)
}

fn memory_available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let avail_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut avail = avail_kib * 1024;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    if let Some(limit) = cgroup_limit(&own, Path::new("/sys/fs/cgroup"), read) {
        avail = avail.min(limit);
    }
    Some(avail)
}

/// The smallest memory limit of the cgroups this process is in, given
/// `/proc/self/cgroup` (`own`) and the cgroup mount `root`: for v1 the
/// `hierarchical_memory_limit` of its memory cgroup (which covers the
/// ancestors); for v2 `memory.max` of its cgroup and every ancestor; and
/// the limits at the mount root (a container's own cgroup). "max", a huge
/// number or a missing file mean no limit there.
fn cgroup_limit(own: &str, root: &Path, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let number = |text: Option<String>| text?.trim().parse::<u64>().ok();
    let mut limits = vec![
        number(read(&root.join("memory.max"))),
        number(read(&root.join("memory/memory.limit_in_bytes"))),
    ];
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let stat = read(&root.join("memory").join(rel).join("memory.stat"));
            limits.push(stat.and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("hierarchical_memory_limit "))
                    .and_then(|v| v.trim().parse().ok())
            }));
        } else if controllers.is_empty() {
            let mut dir = root.join(rel);
            while dir.starts_with(root) {
                limits.push(number(read(&dir.join("memory.max"))));
                if !dir.pop() {
                    break;
                }
            }
        }
    }
    limits.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use super::{
        MAX_DEFAULT_CACHE_MIB, MAX_DEFAULT_SERVE_CACHE_MIB, MIN_CACHE_MIB, cgroup_limit, eighth_of,
    };

    fn fs(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect();
        move |p| map.get(p).cloned()
    }

    #[test]
    fn the_default_cache_is_an_eighth_of_memory_within_bounds() {
        let gib = 1u64 << 30;
        // This machine: 24 GB.
        assert_eq!(eighth_of(24 * gib, MAX_DEFAULT_CACHE_MIB), 1024);
        assert_eq!(eighth_of(24 * gib, MAX_DEFAULT_SERVE_CACHE_MIB), 3072);
        assert_eq!(eighth_of(64 * gib, MAX_DEFAULT_SERVE_CACHE_MIB), 4096);
        // A 256 MiB cgroup: 32 MiB either way; a tiny one: the floor.
        assert_eq!(eighth_of(256 << 20, MAX_DEFAULT_SERVE_CACHE_MIB), 32);
        assert_eq!(eighth_of(256 << 20, MAX_DEFAULT_CACHE_MIB), 32);
        assert_eq!(
            eighth_of(64 << 20, MAX_DEFAULT_SERVE_CACHE_MIB),
            MIN_CACHE_MIB
        );
    }

    #[test]
    fn v1_child_cgroup_limit_is_found() {
        let own = "9:name=systemd:/\n4:memory:/kvr\n0::/\n";
        let read = fs(&[
            ("/cg/memory/memory.limit_in_bytes", "9223372036854771712\n"),
            (
                "/cg/memory/kvr/memory.stat",
                "cache 0\nhierarchical_memory_limit 268435456\n",
            ),
        ]);
        assert_eq!(cgroup_limit(own, Path::new("/cg"), read), Some(256 << 20));
    }

    #[test]
    fn v2_limits_of_ancestors_count() {
        let own = "0::/a/b\n";
        let read = fs(&[
            ("/cg/memory.max", "max\n"),
            ("/cg/a/memory.max", "1000000\n"),
            ("/cg/a/b/memory.max", "max\n"),
        ]);
        assert_eq!(cgroup_limit(own, Path::new("/cg"), read), Some(1_000_000));
        assert_eq!(cgroup_limit("0::/\n", Path::new("/cg"), fs(&[])), None);
    }
}
