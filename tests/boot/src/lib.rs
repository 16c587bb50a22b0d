//! Helpers for the boot tests: build an image for a config with the
//! project's Makefile, boot it in QEMU with a deadline, and check the
//! console. Every failure message carries the whole console log.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod bochs;

/// Builds share one cargo target directory and one output slot per config;
/// one at a time keeps them from trampling each other.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Result of `make build` for a config.
pub struct BuildOutput {
    /// make succeeded.
    pub success: bool,
    /// stdout and stderr together.
    pub log: String,
    /// The raw image (valid when `success`).
    pub image: PathBuf,
}

/// Runs `make build ARCH=aarch64 CONFIG=<config>` (config relative to the
/// repository root).
pub fn build(config: &str) -> BuildOutput {
    build_with_features(config, "")
}

/// Like [`build`], with the hypervisor's cargo `features` (test-only ones,
/// e.g. `fault-injection`; empty for none).
pub fn build_with_features(config: &str, features: &str) -> BuildOutput {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let out = Command::new("make")
        .args(["-s", "build", "ARCH=aarch64", &format!("CONFIG={config}")])
        .arg(format!("FEATURES={features}"))
        .current_dir(&root)
        .output()
        .expect("run make");
    let stem = Path::new(config)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    BuildOutput {
        success: out.status.success(),
        log,
        image: root.join("build/aarch64").join(stem).join("tessera.bin"),
    }
}

/// Runs `make -s <args>` in the repository (under the build lock: it may
/// build images), returning success and the combined output.
pub fn make(args: &[&str]) -> (bool, String) {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("make")
        .arg("-s")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run make");
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), log)
}

/// Builds `config` or fails the test with the build log.
pub fn build_ok(config: &str) -> PathBuf {
    let b = build(config);
    assert!(b.success, "building {config} failed:\n{}", b.log);
    b.image
}

/// A finished QEMU run.
pub struct Run {
    /// Exit status (None if killed at the deadline).
    pub status: Option<i32>,
    /// Console output, `\r` removed.
    pub console: String,
    /// Killed at the deadline.
    pub timed_out: bool,
    /// The console's lines with each cut line joined again.
    joined: Vec<String>,
}

/// The console's lines as their sources wrote them: a line another
/// source's output cut on the terminal continues on a `[<name>]+ ` line
/// (src/console/mux.rs); its text is appended to that source's previous
/// line, which keeps its position (where it started).
pub fn join_continuations(console: &str) -> Vec<String> {
    fn tagged<'a>(line: &'a str, end: &str) -> Option<(&'a str, &'a str)> {
        let (name, rest) = line.strip_prefix('[')?.split_once(end)?;
        (!name.is_empty() && !name.contains([']', ' ', '['])).then_some((name, rest))
    }
    let mut joined: Vec<String> = Vec::new();
    let mut last_of: HashMap<&str, usize> = HashMap::new();
    for line in console.lines() {
        if let Some((name, rest)) = tagged(line, "]+ ") {
            if let Some(part) = last_of.get(name).and_then(|&i| joined.get_mut(i)) {
                part.push_str(rest);
                continue;
            }
        }
        if let Some((name, _)) = tagged(line, "] ") {
            last_of.insert(name, joined.len());
        }
        joined.push(line.to_string());
    }
    joined
}

impl Run {
    /// A run that printed `console` (`\r` already removed).
    pub fn new(status: Option<i32>, console: String, timed_out: bool) -> Self {
        let joined = join_continuations(&console);
        Self {
            status,
            console,
            timed_out,
            joined,
        }
    }

    /// Console lines, each line cut by another source's output joined
    /// again ([`join_continuations`]).
    pub fn lines(&self) -> Vec<&str> {
        self.joined.iter().map(String::as_str).collect()
    }

    /// Fails the test, printing the console, unless `cond`.
    #[track_caller]
    pub fn check(&self, cond: bool, what: &str) {
        assert!(cond, "{what}\nexit status: {:?}, timed out: {}\n----- console -----\n{}\n-------------------", self.status, self.timed_out, self.console);
    }

    /// Index of the first line equal to `line`, failing the test if none.
    #[track_caller]
    pub fn expect_line(&self, line: &str) -> usize {
        let pos = self.lines().iter().position(|l| *l == line);
        self.check(pos.is_some(), &format!("missing console line: {line:?}"));
        pos.unwrap()
    }

    /// Index of the first line starting with `prefix`, failing if none.
    #[track_caller]
    pub fn expect_prefix(&self, prefix: &str) -> usize {
        let pos = self.lines().iter().position(|l| l.starts_with(prefix));
        self.check(
            pos.is_some(),
            &format!("missing console line starting with {prefix:?}"),
        );
        pos.unwrap()
    }

    /// Fails if any line, as printed or joined again, contains `text`.
    #[track_caller]
    pub fn expect_absent(&self, text: &str) {
        self.check(
            !self.console.contains(text) && !self.joined.iter().any(|l| l.contains(text)),
            &format!("console must not contain {text:?}"),
        );
    }
}

/// Boots `image` on QEMU virt (EL2, GICv3, 4 cores, 1 GiB), with `extra`
/// arguments, killing it after `deadline`. The first serial port (the
/// hypervisor console) is the captured stdout; `extra` may add a second.
pub fn boot(image: &Path, extra: &[&str], deadline: Duration) -> Run {
    boot_until(image, extra, deadline, None)
}

/// Like [`boot`], but also ends the run (killing QEMU, `status` None,
/// `timed_out` false) as soon as the console holds a line starting with
/// `stop_at`: for runs that by design never end by themselves.
pub fn boot_until(image: &Path, extra: &[&str], deadline: Duration, stop_at: Option<&str>) -> Run {
    boot_cpu_until_all(image, DEFAULT_CPU, extra, deadline, stop_at.as_slice())
}

/// Boots `image` until every line prefix in `markers` was printed (then the
/// run is stopped), QEMU exits, or `deadline` passes. No markers: until exit.
pub fn boot_until_all(image: &Path, extra: &[&str], deadline: Duration, markers: &[&str]) -> Run {
    boot_cpu_until_all(image, DEFAULT_CPU, extra, deadline, markers)
}

/// The CPU model QEMU emulates unless a test asks for another.
pub const DEFAULT_CPU: &str = "cortex-a72";

/// Like [`boot`], on QEMU CPU model `cpu` (e.g. `max`: every feature QEMU
/// implements, to check the hypervisor hides or supports each).
pub fn boot_cpu(image: &Path, cpu: &str, extra: &[&str], deadline: Duration) -> Run {
    boot_cpu_until_all(image, cpu, extra, deadline, &[])
}

/// Like [`boot_until`], on QEMU CPU model `cpu`.
pub fn boot_cpu_until(
    image: &Path,
    cpu: &str,
    extra: &[&str],
    deadline: Duration,
    stop_at: Option<&str>,
) -> Run {
    boot_cpu_until_all(image, cpu, extra, deadline, stop_at.as_slice())
}

/// Like [`boot_until_all`], on QEMU CPU model `cpu`.
pub fn boot_cpu_until_all(
    image: &Path,
    cpu: &str,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
) -> Run {
    run_qemu(
        image,
        DEFAULT_MACHINE,
        cpu,
        extra,
        deadline,
        markers,
        &[],
        None,
    )
    .0
}

/// The QEMU machine unless a test asks for another: virt with EL2, GICv3.
pub const DEFAULT_MACHINE: &str = "virt,virtualization=on,gic-version=3";
/// QEMU virt with EL2 and a GICv2 with its virtualization extensions.
pub const GICV2_MACHINE: &str = "virt,virtualization=on,gic-version=2";

/// Like [`boot_cpu_until_all`], on QEMU machine `machine` (`-M`).
pub fn boot_machine_until_all(
    image: &Path,
    machine: &str,
    cpu: &str,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
) -> Run {
    run_qemu(image, machine, cpu, extra, deadline, markers, &[], None).0
}

/// QEMU's Raspberry Pi 4 model (BCM2711, GIC-400 with the virtualization
/// extensions, 2 GiB). With `-kernel` QEMU plays the Pi firmware: the image
/// at 0x20_0000 entered at EL2 with the device tree (`-dtb`) in x0, the
/// other cores spinning on the spin table at 0xd8-0xf0.
pub const RASPI4B_MACHINE: &str = "raspi4b";

/// Like [`boot_typing`], on QEMU machine `machine`.
pub fn boot_machine_typing(
    image: &Path,
    machine: &str,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
    script: &[Typing],
) -> Run {
    run_qemu(
        image,
        machine,
        DEFAULT_CPU,
        extra,
        deadline,
        markers,
        script,
        None,
    )
    .0
}

/// One step of typing on the hypervisor console (QEMU's stdin): once the
/// console holds a line (complete or not) starting with `after`, `bytes`
/// are sent. Steps run in order.
pub struct Typing<'a> {
    /// Console line prefix to wait for.
    pub after: &'a str,
    /// What to type then.
    pub bytes: &'a [u8],
}

/// Like [`boot_until_all`], typing `script` on the console as its lines
/// appear.
pub fn boot_typing(
    image: &Path,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
    script: &[Typing],
) -> Run {
    boot_machine_typing(image, DEFAULT_MACHINE, extra, deadline, markers, script)
}

/// What to ask QEMU's monitor once every marker was seen (the guests still
/// running): after `settle`, each command in turn; the monitor's replies
/// come back with the run. Lets a test look at the machine from outside,
/// e.g. `pmemsave` of each VM's host RAM.
pub struct MonitorStep<'a> {
    /// Time to let the guests run on after the markers.
    pub settle: Duration,
    /// Monitor commands (without the newline).
    pub commands: &'a [String],
}

/// Like [`boot_until_all`] (markers must not be empty), then runs
/// `step`'s monitor commands before stopping QEMU. Returns the run and the
/// monitor's output (empty if the markers never came).
pub fn boot_until_all_then_monitor(
    image: &Path,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
    step: &MonitorStep,
) -> (Run, String) {
    run_qemu(
        image,
        DEFAULT_MACHINE,
        DEFAULT_CPU,
        extra,
        deadline,
        markers,
        &[],
        Some(step),
    )
}

/// Talks to QEMU's monitor on a Unix socket: runs `commands`, returns the
/// text it printed.
fn run_monitor(socket: &Path, commands: &[String]) -> String {
    use std::os::unix::net::UnixStream;
    let mut out = String::new();
    let Ok(mut s) = UnixStream::connect(socket) else {
        return "cannot connect to the QEMU monitor".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let read_prompt = |s: &mut UnixStream, out: &mut String| {
        let mut buf = [0u8; 4096];
        let start = out.len();
        while !out[start..].contains("(qemu) ") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    };
    read_prompt(&mut s, &mut out);
    for c in commands {
        if s.write_all(format!("{c}\n").as_bytes()).is_err() {
            break;
        }
        read_prompt(&mut s, &mut out);
    }
    out
}

/// Boots QEMU with `image`, types `script` as its lines appear, and stops
/// when every marker was seen (after `monitor`'s commands, if any), QEMU
/// exits, or `deadline` passes.
/// Boots `image` on QEMU machine `machine` with CPU `cpu` (the one place
/// QEMU is started).
#[allow(clippy::too_many_arguments)]
fn run_qemu(
    image: &Path,
    machine: &str,
    cpu: &str,
    extra: &[&str],
    deadline: Duration,
    markers: &[&str],
    script: &[Typing],
    monitor: Option<&MonitorStep>,
) -> (Run, String) {
    let socket = std::env::temp_dir().join(format!(
        "tessera-monitor-{}-{:?}.sock",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&socket);
    let monitor_arg = match monitor {
        Some(_) => format!("unix:{},server=on,wait=off", socket.display()),
        None => "none".into(),
    };
    let mut monitor_out = String::new();
    // raspi4b has its RAM size fixed (2 GiB); the virt boards get 1 GiB.
    let memory = if machine == RASPI4B_MACHINE {
        "2G"
    } else {
        "1G"
    };
    let mut child = Command::new("qemu-system-aarch64")
        .args(["-M", machine, "-cpu", cpu])
        .args(["-smp", "4", "-m", memory])
        .args([
            "-display",
            "none",
            "-monitor",
            &monitor_arg,
            "-serial",
            "stdio",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(extra)
        .arg("-kernel")
        .arg(image)
        .stdin(if script.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-aarch64 (run scripts/setup.sh)");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let output = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&output);
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&chunk[..n]);
        }
    });
    let seen = |marker: &str| {
        let out = output.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&out).replace('\r', "");
        join_continuations(&text)
            .iter()
            .any(|l| l.starts_with(marker))
    };
    let all_seen = || markers.iter().all(|m| seen(m));
    let mut stdin = child.stdin.take();
    let mut steps = script.iter().peekable();
    let start = Instant::now();
    let (status, timed_out) = loop {
        while let Some(step) = steps.next_if(|s| seen(s.after)) {
            if let Some(input) = stdin.as_mut() {
                let _ = input.write_all(step.bytes).and_then(|()| input.flush());
            }
        }
        if let Some(s) = child.try_wait().expect("wait qemu") {
            break (s.code(), false);
        }
        if !markers.is_empty() && all_seen() {
            if let Some(step) = monitor {
                std::thread::sleep(step.settle);
                monitor_out = run_monitor(&socket, step.commands);
            }
            let _ = child.kill();
            let _ = child.wait();
            break (None, false);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = reader.join();
    let raw = output.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut console = String::from_utf8_lossy(&raw).replace('\r', "");
    if !err.trim().is_empty() {
        console.push_str("\n[qemu stderr] ");
        console.push_str(err.trim());
    }
    let _ = std::fs::remove_file(&socket);
    (Run::new(status, console, timed_out), monitor_out)
}

/// The irq guest's checks of the virtual GIC's rules, in the order it
/// prints them (guests/irqguest).
pub const IRQ_GUEST_CHECKS: [&str; 7] = [
    "vgic-identity",
    "vtimer-interrupt",
    "sgi-to-other-vcpu",
    "sgi-to-foreign-cpus-ignored",
    "unowned-interrupts-ignored",
    "gicd-odd-widths",
    "gicd-isv0-pair-writeback",
];

/// Checks that every functional check of the test guest passed in VM `vm`
/// (`vcpus` tells which PSCI checks must have run) and returns the index
/// of its RESULT line.
#[track_caller]
pub fn expect_testguest_pass(run: &Run, vm: &str, vcpus: usize) -> usize {
    let mut checks = vec![
        "console",
        "hypercall-null",
        "hypercall-unknown",
        "vm-info",
        "psci-version",
        "psci-features",
        "psci-smc",
        "psci-cpu-on-invalid",
        "abort-outside-ram",
        "abort-unowned-device",
        "abort-write",
        "memory-private",
        "mmio-decode-writeback",
        "mmio-decode-pair",
        "sysreg-id",
        "pmu-undefined",
        "set-way-handled",
        "debug-regs-contained",
        "hidden-features-undefined",
        "wfi-timer",
    ];
    if vcpus > 1 {
        checks.extend([
            "psci-cpu-on-bad-entry",
            "psci-cpu-on",
            "psci-already-on",
            "psci-affinity-info",
            "psci-cpu-on-again",
        ]);
    }
    for c in &checks {
        run.expect_line(&format!("[{vm}] TEST {c}: PASS"));
    }
    let failed: Vec<&str> = run
        .lines()
        .into_iter()
        .filter(|l| l.starts_with(&format!("[{vm}] TEST ")) && !l.ends_with(": PASS"))
        .collect();
    run.check(
        failed.is_empty(),
        &format!("failed checks in {vm}: {failed:?}"),
    );
    run.expect_line(&format!("[{vm}] RESULT: pass={} fail=0", checks.len()))
}

#[cfg(test)]
mod tests {
    use super::join_continuations;

    #[test]
    fn a_cut_line_is_joined_at_its_start_and_new_lines_stay_apart() {
        let console = "[a] TEST one: \n[b] TEST two: PASS\n[a]+ PASS\n[a] next\n[tessera] x\n";
        assert_eq!(
            join_continuations(console),
            [
                "[a] TEST one: PASS",
                "[b] TEST two: PASS",
                "[a] next",
                "[tessera] x"
            ]
        );
    }

    #[test]
    fn a_continuation_with_no_earlier_line_is_kept_as_printed() {
        let console = "[a]+ late\nplain text\n[not a tag]+ y\n";
        assert_eq!(
            join_continuations(console),
            ["[a]+ late", "plain text", "[not a tag]+ y"]
        );
    }
}
