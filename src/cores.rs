//! CPU lists and the core layout: which CPUs read sockets and which run jobs.
//!
//! `CpuList::parse` reads the `0,2-3` syntax of `--io-cores` and
//! `--compute-cores`; `CoreLayout::resolve` combines those flags, `--reserve`
//! and the process's usable CPUs (its affinity mask, so `taskset` and cgroups
//! are honoured) into one validated layout. Every mistake is an error here,
//! before any executor starts. `ComputePriority` is how compute threads share
//! their CPUs with anything else scheduled there.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};

/// Largest CPU number accepted in a list; guards against `0-4000000000` allocating forever.
pub const MAX_CPU: usize = 4095;

/// An ordered list of distinct CPU numbers, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl CpuList {
    /// Parses `0,2-3` style lists. Empty items, reversed ranges, numbers above
    /// [`MAX_CPU`] and a CPU named twice are errors.
    pub fn parse(flag: &str, text: &str) -> Result<CpuList> {
        let bad = |why: String| Error::Config(format!("{flag} {text:?}: {why}"));
        let mut seen = BTreeSet::new();
        let mut cpus = Vec::new();
        if text.trim().is_empty() {
            return Err(bad("the list is empty; write CPUs like 0,2-3".into()));
        }
        for item in text.split(',') {
            let item = item.trim();
            let (lo, hi) = match item.split_once('-') {
                Some((lo, hi)) => (parse_cpu(lo).map_err(&bad)?, parse_cpu(hi).map_err(&bad)?),
                None => {
                    let cpu = parse_cpu(item).map_err(&bad)?;
                    (cpu, cpu)
                }
            };
            if lo > hi {
                return Err(bad(format!("range {item} runs backwards")));
            }
            for cpu in lo..=hi {
                if !seen.insert(cpu) {
                    return Err(bad(format!("CPU {cpu} is named twice")));
                }
                cpus.push(cpu);
            }
        }
        Ok(CpuList(cpus))
    }
}

fn parse_cpu(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a CPU number"));
    }
    match text.parse::<usize>() {
        Ok(cpu) if cpu <= MAX_CPU => Ok(cpu),
        _ => Err(format!("CPU {text} is larger than {MAX_CPU}")),
    }
}

/// Where every executor runs. Built once by [`CoreLayout::resolve`].
#[derive(Clone, PartialEq, Eq)]
pub struct CoreLayout {
    /// CPUs with an I/O executor (listener + connections), in the order given.
    pub io: Vec<usize>,
    /// CPUs with a compute executor (heavy jobs only).
    pub compute: Vec<usize>,
    /// True when compute executors share CPUs with I/O executors (a 1-core
    /// machine, or `--reserve 0`): jobs then yield the CPU between steps.
    pub shared: bool,
}

impl fmt::Debug for CoreLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "io={:?} compute={:?}", self.io, self.compute)?;
        if self.shared {
            write!(f, " (shared)")?;
        }
        Ok(())
    }
}

impl CoreLayout {
    /// The CPUs this process may run on (its affinity mask), sorted.
    pub fn usable_cpus() -> Vec<usize> {
        let mut cpus: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            cpus.push(0);
        }
        cpus
    }

    /// Combines the flags with the usable CPUs.
    ///
    /// - `--compute-cores` names compute CPUs; otherwise the last `reserve`
    ///   usable CPUs not named by `--io-cores` are reserved (default 1 when 2 or
    ///   more CPUs are usable, else 0).
    /// - `--io-cores` names I/O CPUs; otherwise every usable CPU not used for compute.
    /// - With no compute CPU left (1 usable CPU, or `--reserve 0`) the compute
    ///   executor shares the last I/O CPU and `shared` is set.
    pub fn resolve(
        usable: &[usize],
        io: Option<&CpuList>,
        compute: Option<&CpuList>,
        reserve: Option<usize>,
    ) -> Result<CoreLayout> {
        let check_usable = |flag: &str, list: &CpuList| -> Result<()> {
            match list.0.iter().find(|cpu| !usable.contains(cpu)) {
                Some(cpu) => Err(Error::Config(format!(
                    "{flag}: CPU {cpu} is not usable by this process (usable: {})",
                    format_cpus(usable)
                ))),
                None => Ok(()),
            }
        };
        if let Some(list) = io {
            check_usable("--io-cores", list)?;
        }
        if let Some(list) = compute {
            check_usable("--compute-cores", list)?;
        }
        let compute_cpus: Vec<usize> = match compute {
            Some(list) => list.0.clone(),
            None => {
                let default = usize::from(usable.len() >= 2);
                let k = reserve.unwrap_or(default);
                let free: Vec<usize> = usable
                    .iter()
                    .copied()
                    .filter(|cpu| io.is_none_or(|l| !l.0.contains(cpu)))
                    .collect();
                let spare_for_io = usize::from(io.is_none());
                if k + spare_for_io > free.len() {
                    return Err(Error::Config(match (io, reserve) {
                        // The default reserve, with every usable CPU named
                        // for I/O: say what the user did name.
                        (Some(list), None) => format!(
                            "--io-cores {} leaves no usable CPU for a compute core (usable: {}): name one with --compute-cores, or pass --reserve 0 to share the last I/O CPU",
                            format_cpus(&list.0),
                            format_cpus(usable)
                        ),
                        (Some(_), Some(_)) => format!(
                            "--reserve {k}: only {} usable CPUs are not named by --io-cores ({})",
                            free.len(),
                            if free.is_empty() { "none".into() } else { format_cpus(&free) }
                        ),
                        (None, _) => format!(
                            "--reserve {k}: only {} usable CPUs ({}), and at least one must do I/O",
                            usable.len(),
                            format_cpus(usable)
                        ),
                    }));
                }
                free[free.len() - k..].to_vec()
            }
        };
        let io_cpus: Vec<usize> = match io {
            Some(list) => list.0.clone(),
            None => usable
                .iter()
                .copied()
                .filter(|cpu| !compute_cpus.contains(cpu))
                .collect(),
        };
        if io_cpus.is_empty() {
            return Err(Error::Config(
                "no CPU is left for I/O: name one with --io-cores or reserve fewer".into(),
            ));
        }
        if let Some(cpu) = io_cpus.iter().find(|cpu| compute_cpus.contains(cpu)) {
            return Err(Error::Config(format!(
                "CPU {cpu} is named as both an I/O and a compute core"
            )));
        }
        if compute_cpus.is_empty() {
            let last = io_cpus[io_cpus.len() - 1];
            return Ok(CoreLayout {
                io: io_cpus,
                compute: vec![last],
                shared: true,
            });
        }
        Ok(CoreLayout {
            io: io_cpus,
            compute: compute_cpus,
            shared: false,
        })
    }
}

/// `[0, 1, 2, 5]` -> `0-2,5`.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// How compute threads compete for their CPU with whatever else the kernel
/// schedules there (another process, or the I/O thread on a shared core).
/// On CPUs that only run compute it changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputePriority {
    /// Fair share, like any other thread.
    #[default]
    Normal,
    /// nice 19: a small share while others want the CPU, all of it otherwise.
    Low,
    /// SCHED_IDLE: only CPU time nothing else wants. Fast work sharing the CPU
    /// is never delayed by a job, but busy neighbours can starve jobs into
    /// their timeout (504).
    Idle,
}

impl ComputePriority {
    pub fn parse(text: &str) -> Result<ComputePriority> {
        match text {
            "normal" => Ok(ComputePriority::Normal),
            "low" => Ok(ComputePriority::Low),
            "idle" => Ok(ComputePriority::Idle),
            _ => Err(Error::Config(format!(
                "--compute-priority {text:?}: must be normal, low or idle"
            ))),
        }
    }

    /// Puts the calling thread (an executor's own) in this scheduling class.
    /// Lowering a thread's priority needs no privileges.
    pub fn apply_to_current_thread(self) -> std::io::Result<()> {
        let rc = match self {
            ComputePriority::Normal => return Ok(()),
            // SAFETY: plain syscalls; who = 0 / pid = 0 is the calling thread
            // (Linux keeps nice and policy per thread).
            ComputePriority::Low => unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) },
            ComputePriority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: as above; `param` outlives the call.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
            }
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> CpuList {
        CpuList::parse("--io-cores", text).unwrap()
    }

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(list("0").0, vec![0]);
        assert_eq!(list("0,2-3").0, vec![0, 2, 3]);
        assert_eq!(list(" 5 , 1-2 ").0, vec![5, 1, 2]);
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in [
            "", " ", "a", "1,", ",1", "3-1", "1-", "-1", "1,1", "0-2,2", "1.5", "+1", "99999",
        ] {
            assert!(
                CpuList::parse("--io-cores", bad).is_err(),
                "{bad:?} should fail"
            );
        }
    }

    #[test]
    fn default_reserves_last_core() {
        let l = CoreLayout::resolve(&[0, 1, 2, 3], None, None, None).unwrap();
        assert_eq!((l.io, l.compute, l.shared), (vec![0, 1, 2], vec![3], false));
        let l = CoreLayout::resolve(&[0, 1], None, None, None).unwrap();
        assert_eq!((l.io, l.compute), (vec![0], vec![1]));
    }

    #[test]
    fn one_core_is_shared() {
        let l = CoreLayout::resolve(&[0], None, None, None).unwrap();
        assert_eq!((l.io, l.compute, l.shared), (vec![0], vec![0], true));
        let l = CoreLayout::resolve(&[0, 1], None, None, Some(0)).unwrap();
        assert_eq!((l.io, l.compute, l.shared), (vec![0, 1], vec![1], true));
    }

    #[test]
    fn explicit_lists_and_reserve() {
        let usable = [0, 1, 2, 3];
        let l = CoreLayout::resolve(&usable, Some(&list("0")), Some(&list("2-3")), None).unwrap();
        assert_eq!((l.io, l.compute), (vec![0], vec![2, 3]));
        let l = CoreLayout::resolve(&usable, None, None, Some(2)).unwrap();
        assert_eq!((l.io, l.compute), (vec![0, 1], vec![2, 3]));
        let l = CoreLayout::resolve(&usable, Some(&list("3")), None, Some(1)).unwrap();
        assert_eq!((l.io, l.compute), (vec![3], vec![2]));
    }

    #[test]
    fn layout_errors() {
        let usable = [0, 1];
        // Not usable.
        assert!(CoreLayout::resolve(&usable, Some(&list("7")), None, None).is_err());
        // Overlap between roles.
        assert!(CoreLayout::resolve(&usable, Some(&list("0-1")), Some(&list("1")), None).is_err());
        // Nothing left for I/O.
        assert!(CoreLayout::resolve(&usable, None, None, Some(2)).is_err());
        assert!(CoreLayout::resolve(&usable, None, Some(&list("0-1")), None).is_err());
        // Every CPU named for I/O, no --reserve: the message names what was
        // given, not a --reserve the user never passed.
        let err = CoreLayout::resolve(&usable, Some(&list("0-1")), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--io-cores 0-1 leaves no usable CPU for a compute core")
                && err.contains("--reserve 0"),
            "{err}"
        );
        let err = CoreLayout::resolve(&usable, Some(&list("0")), None, Some(2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not named by --io-cores (1)"), "{err}");
        // Sharing on purpose is fine.
        let l = CoreLayout::resolve(&usable, Some(&list("0-1")), None, Some(0)).unwrap();
        assert_eq!((l.compute, l.shared), (vec![1], true));
    }

    #[test]
    fn formats_cpu_ranges() {
        assert_eq!(format_cpus(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cpus(&[]), "");
    }

    #[test]
    fn compute_priorities() {
        assert_eq!(
            ComputePriority::parse("normal").unwrap(),
            ComputePriority::Normal
        );
        assert_eq!(ComputePriority::parse("low").unwrap(), ComputePriority::Low);
        assert_eq!(
            ComputePriority::parse("idle").unwrap(),
            ComputePriority::Idle
        );
        for bad in ["", "Idle", "high", "19"] {
            let err = ComputePriority::parse(bad).unwrap_err().to_string();
            assert!(err.contains("--compute-priority"), "{bad:?}: {err}");
        }
    }
}
