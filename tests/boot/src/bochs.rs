//! Helpers for the x86_64 boot tests: build a GRUB ISO for a config with
//! `make iso ARCH=x86_64`, boot it in Bochs (`scripts/run-bochs.sh`) or in
//! QEMU (no VMX there), and hand back the console as a [`Run`].

use crate::{repo_root, Run, BUILD_LOCK};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `make iso ARCH=x86_64 CONFIG=<config>` and returns a private copy
/// of the ISO, or fails the test with the build log.
pub fn iso_ok(config: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let out = Command::new("make")
        .args(["-s", "iso", "ARCH=x86_64", &format!("CONFIG={config}")])
        .current_dir(&root)
        .output()
        .expect("run make");
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "make iso for {config} failed:\n{log}");
    let stem = Path::new(config)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir = root.join("build/x86_64").join(stem);
    // A copy per call: a test booting its ISO must not see another test's
    // `make iso` rewrite it; the console logs then have their own names too.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let mine = format!("test-{}-", std::process::id());
    // Copies left by earlier test runs.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("test-") && !name.starts_with(&mine) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let copy = dir.join(format!("{mine}{n}.iso"));
    std::fs::copy(dir.join("tessera.iso"), &copy).expect("copy the ISO");
    copy
}

/// Boots `iso` in Bochs (VMX + EPT CPU model) with a deadline. `status` is
/// the script's verdict (0 all VMs powered off, 1 a VM stopped, 2 other);
/// the console is COM1. Also reports how long the boot took.
pub fn boot_bochs(iso: &Path, deadline: Duration) -> (Run, Duration) {
    boot_bochs_typing(iso, deadline, None)
}

/// As [`boot_bochs`], with COM1 typed on: `script` holds
/// `expect <text>` / `send <text>` lines (scripts/bochs-com1.py).
pub fn boot_bochs_typing(iso: &Path, deadline: Duration, script: Option<&str>) -> (Run, Duration) {
    let com1 = iso.with_extension("com1.log");
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/run-bochs.sh"))
        .arg(iso)
        .arg(&com1)
        .env("BOCHS_TIMEOUT", deadline.as_secs().to_string())
        .stdin(Stdio::null());
    if let Some(script) = script {
        let path = iso.with_extension("com1-input.txt");
        std::fs::write(&path, script).expect("write the COM1 input script");
        cmd.env("COM1_INPUT", path);
    }
    let start = Instant::now();
    let status = cmd
        .status()
        .expect("run scripts/run-bochs.sh (bash scripts/setup-x86.sh installs Bochs)");
    let took = start.elapsed();
    let console = std::fs::read(&com1)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    let run = Run::new(status.code(), console, took >= deadline);
    (run, took)
}

/// Boots `iso` in QEMU's x86 TCG (no VMX) with `extra` arguments until the
/// console (COM1, to a file) has a line starting with `stop_at`, QEMU
/// exits, or the deadline passes.
pub fn boot_qemu_x86(iso: &Path, extra: &[&str], deadline: Duration, stop_at: &str) -> Run {
    let com1 = iso.with_extension("qemu-com1.log");
    let _ = std::fs::remove_file(&com1);
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-m", "512M", "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", com1.display()))
        .arg("-cdrom")
        .arg(iso)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64 (run scripts/setup.sh)");
    let read = || {
        std::fs::read(&com1)
            .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
            .unwrap_or_default()
    };
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait().expect("wait qemu") {
            break (s.code(), false);
        }
        if read().lines().any(|l| l.starts_with(stop_at)) {
            let _ = child.kill();
            let _ = child.wait();
            break (None, false);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run::new(status, read(), timed_out)
}
