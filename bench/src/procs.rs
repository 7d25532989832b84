//! What a host's processes cost, from `/proc`: CPU time (user + system) and
//! peak resident memory (`VmHWM`, which writing `5` to `clear_refs` resets,
//! so that each load level reports its own peak).

use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ; 100 on
/// Linux unless the kernel was built otherwise, which `getconf` would show).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; count after its ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / TICKS_PER_SEC
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Anonymous resident memory (KiB): the heap, without mapped files.
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// Resident set (KiB) now: heap and mapped files.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Open file descriptors of a process.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of a process.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Peak resident set (KiB) since start or the last [`reset_peak`].
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resets the peak resident set to the current one.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The processes of a process group (a wasm deployment: the host per
/// region, its runtime, sqld).
pub fn group_members(group: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            rest.split_whitespace().nth(2) == Some(&group.to_string())
        })
        .collect()
}

/// A process's command name, for reports.
pub fn name(pid: u32) -> String {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Measures a set of processes across some work.
pub struct Meter {
    pids: Vec<u32>,
    cpu: Vec<f64>,
    started: std::time::Instant,
}

/// CPU used (as a share of one core: 1.0 = one core busy) and peak RSS.
#[derive(Debug, Clone)]
pub struct Cost {
    pub cpu_cores: f64,
    pub peak_rss_kib: u64,
    /// CPU (cores) by process name, largest first.
    pub by_process: Vec<(String, f64)>,
}

impl Meter {
    pub fn start(pids: &[u32]) -> Meter {
        for p in pids {
            reset_peak(*p);
        }
        Meter {
            pids: pids.to_vec(),
            cpu: pids.iter().map(|p| cpu_seconds(*p)).collect(),
            started: std::time::Instant::now(),
        }
    }

    pub fn stop(self) -> Cost {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut by: std::collections::BTreeMap<String, f64> = Default::default();
        for (p, before) in self.pids.iter().zip(&self.cpu) {
            *by.entry(name(*p)).or_default() += (cpu_seconds(*p) - before) / secs;
        }
        let mut by_process: Vec<(String, f64)> = by.into_iter().collect();
        by_process.sort_by(|a, b| b.1.total_cmp(&a.1));
        Cost {
            cpu_cores: by_process.iter().map(|(_, c)| c).sum(),
            peak_rss_kib: self.pids.iter().map(|p| peak_rss_kib(*p)).sum(),
            by_process,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        // Burn a little CPU so that the counter moves.
        let meter = Meter::start(&[me]);
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let cost = meter.stop();
        assert!(cost.cpu_cores > 0.0, "{cost:?}");
        assert!(cost.peak_rss_kib > 0 && rss_anon_kib(me) > 0 && rss_kib(me) > 0);
        assert!(open_files(me) >= 3 && threads(me) >= 1);
        assert_eq!(cost.by_process.len(), 1);
        assert!(!name(me).is_empty());
        assert_eq!(
            cpu_seconds(u32::MAX),
            0.0,
            "a missing process costs nothing"
        );
    }
}
