//! Containment and lifecycle boot tests: the hostile guest's attack list
//! beside a neighbour with a heartbeat (checked from the host through the
//! QEMU monitor too), and cross-core resets and stops of a 2-vCPU VM.

use std::time::Duration;
use tessera_boot_tests::*;

const DEADLINE: Duration = Duration::from_secs(300);
/// Longest the neighbour's loop may be kept from running. Generous: under
/// TCG on a shared 2-core machine the host scheduler alone causes gaps of
/// a few hundred ms; a hypervisor stall (a lock held, a parked core) would
/// show as seconds or as missing heartbeats.
const HEARTBEAT_GAP_BOUND_US: u64 = 2_000_000;

/// Attacks that each print `ATTACK <name>: contained ...` on success.
const ATTACKS: [&str; 15] = [
    "read-write-hypervisor-region",
    "read-write-hypervisor-heap-end",
    "read-write-neighbour-ram",
    "read-write-checker-ram",
    "ipa-sweep",
    "gicd-foreign-spis",
    "gicr-foreign-frames",
    "sgi-to-foreign-cpus",
    "psci-foreign",
    "smc-hvc-sweep",
    "set-way",
    "impdef-sysregs",
    "pmu-sysregs",
    "debug-sysregs",
    "trap-flood",
];

/// Host address, tag and name of each hostileguest VM's RAM in
/// tests/configs/containment.toml.
const PATTERNS: [(u64, u64, &str); 2] = [
    (0x4800_0000, 0xA77A_C4E5, "attacker"),
    (0x4A00_0000, 0x4E16_4B0A, "neighbour"),
];
const RAM_SIZE: u64 = 0x0200_0000;
/// hostileguest's pattern layout: word i at 16 MiB + i * 256 KiB.
const PATTERN_OFFSET: u64 = 16 << 20;
const PATTERN_STRIDE: u64 = 256 << 10;
const PATTERN_WORDS: u64 = 32;

fn word_at(dump: &[u8], off: u64) -> u64 {
    let o = off as usize;
    dump.get(o..o + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

#[test]
fn hostile_guest_is_contained_and_the_neighbour_runs_on() {
    let image = build_ok("tests/configs/containment.toml");
    let dir = std::env::temp_dir().join(format!("tessera-containment-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let dumps: Vec<_> = PATTERNS
        .iter()
        .map(|(_, _, name)| dir.join(format!("{name}.ram")))
        .collect();
    let commands: Vec<String> = PATTERNS
        .iter()
        .zip(&dumps)
        .map(|((hpa, _, _), file)| {
            format!("pmemsave {hpa:#x} {RAM_SIZE:#x} \"{}\"", file.display())
        })
        .collect();
    let (run, monitor) = boot_until_all_then_monitor(
        &image,
        &[],
        DEADLINE,
        &["[attacker] HOSTILE DONE", "[checker] RESULT"],
        &MonitorStep {
            settle: Duration::from_millis(2500),
            commands: &commands,
        },
    );
    run.check(!run.timed_out, "the attacker finishes in time");
    run.expect_absent("PANIC");
    run.expect_absent("BREACH");

    // Every attack has its outcome, and the attacker carried on after each.
    let start = run.expect_line("[attacker] HOSTILE start");
    for name in ATTACKS {
        let at = run.expect_prefix(&format!("[attacker] ATTACK {name}: contained"));
        run.check(at > start, &format!("{name} ran after the start"));
    }
    let odd = run
        .lines()
        .iter()
        .filter(|l| l.starts_with("[attacker] ATTACK odd-access ") && l.contains(": contained "))
        .count();
    run.check(odd == 27, &format!("27 odd accesses survived, saw {odd}"));

    // The fault with no vector table: detected, one clear line, restarted
    // by on_fault; the attacker's core serves it again afterwards.
    let stuck = run.expect_prefix("[tessera] WARN: vm attacker: unhandled");
    let stuck_line = run
        .lines()
        .into_iter()
        .skip(stuck)
        .find(|l| l.contains("the guest cannot take the exception"))
        .map(str::to_owned);
    run.check(
        stuck_line
            .as_deref()
            .is_some_and(|l| l.ends_with("restarting VM")),
        "the no-progress line names the restart",
    );
    let reset = run.expect_line("[tessera] vm attacker: reset #1");
    let restarted = run.expect_prefix("[attacker] ATTACK no-vector-table: contained");
    let served = run.expect_prefix("[attacker] ATTACK core-still-served: contained");
    let done = run.expect_line("[attacker] HOSTILE DONE");
    run.check(
        reset < restarted && restarted < served && served < done,
        "restart, then served",
    );

    // The flood did not flood the console: its lines were rate-limited
    // and counted.
    let warns = run
        .lines()
        .iter()
        .filter(|l| l.starts_with("[tessera] WARN: vm attacker:"))
        .count();
    let suppressed: u64 = run
        .lines()
        .iter()
        .filter_map(|l| {
            l.strip_prefix("[tessera] WARN: vm attacker: ")?
                .strip_suffix(" earlier lines suppressed")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    run.check(warns < 400, &format!("{warns} attacker warnings printed"));
    // Lines suppressed after the last printed one are counted too, but
    // only reported with the VM's next line or in the summary (this run is
    // stopped before either), hence not the whole 100,000 here; how many
    // depends on how long the flood took (the bucket refills with time: on
    // a loaded CI host 88,721 were reported once), so the bound is loose.
    run.check(
        suppressed >= 50_000,
        &format!("the flood's lines were counted as suppressed ({suppressed})"),
    );

    // The neighbour: a heartbeat through the whole attack and after it,
    // no interrupt that was not its own, its memory untouched.
    let beats: Vec<(usize, u64, u64, bool)> = run
        .lines()
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.strip_prefix("[neighbour] HEARTBEAT ")?;
            let field = |k: &str| {
                rest.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .map(str::to_owned)
            };
            Some((
                i,
                field("max-gap-us=")?.parse().ok()?,
                field("irqs=")?.parse().ok()?,
                field("pattern=")? == "intact",
            ))
        })
        .collect();
    // The flood lasts at least 3 s: a heartbeat lands inside it.
    let flood_start = run.expect_line("[attacker] ATTACK trap-flood: starting");
    let flood = run.expect_prefix("[attacker] ATTACK trap-flood: contained");
    run.check(
        beats.iter().any(|b| b.0 > flood_start && b.0 < flood) && beats.iter().any(|b| b.0 > done),
        "the neighbour's heartbeat ran during the flood and after the attacker was done",
    );
    let (_, gap, _, _) = *beats.last().unwrap();
    run.check(
        gap <= HEARTBEAT_GAP_BOUND_US,
        &format!("neighbour's longest gap {gap} us within {HEARTBEAT_GAP_BOUND_US} us"),
    );
    run.check(
        beats.iter().all(|b| b.2 == 0 && b.3),
        "the neighbour got no interrupt and its pattern stayed intact",
    );
    expect_testguest_pass(&run, "checker", 1);

    // From the host: each VM's RAM holds its own pattern and none of the
    // other's (a stage-2 map that pointed both VMs at the same RAM, or let
    // the attacker write the neighbour's, fails here whatever the timing).
    for ((_, tag, name), file) in PATTERNS.iter().zip(&dumps) {
        let dump = std::fs::read(file).unwrap_or_default();
        run.check(
            dump.len() as u64 == RAM_SIZE,
            &format!(
                "pmemsave of {name} ({} bytes); monitor said:\n{monitor}",
                dump.len()
            ),
        );
        for i in 0..PATTERN_WORDS {
            let w = word_at(&dump, PATTERN_OFFSET + i * PATTERN_STRIDE);
            run.check(w == tag << 32 | i, &format!("{name} word {i} is {w:#x}"));
        }
        for (_, other, other_name) in PATTERNS.iter().filter(|p| p.1 != *tag) {
            let foreign = (0..RAM_SIZE / 8).any(|k| word_at(&dump, k * 8) >> 32 == *other);
            run.check(
                !foreign,
                &format!("{other_name}'s pattern found in {name}'s RAM"),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resets_and_a_stop_across_cores_keep_the_vm_and_the_heap_consistent() {
    let image = build_ok("tests/configs/lifecycle.toml");
    let run = boot(&image, &[], DEADLINE);
    run.check(!run.timed_out, "the run ends by itself");
    run.expect_absent("PANIC");
    // The boot log names each image's SHA-256, the one every load checks.
    let guest = repo_root().join("build/guests/aarch64/hostileguest.bin");
    let sum = std::process::Command::new("sha256sum")
        .arg(&guest)
        .output()
        .expect("run sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    let digest = sum.split_whitespace().next().unwrap_or("");
    let size = std::fs::metadata(&guest).map_or(0, |m| m.len());
    run.expect_line(&format!(
        "[tessera] vm cycler: image kernel ({size} bytes) sha256 {digest}"
    ));
    for state in ["spinning", "in-wfi", "mid-trap"] {
        run.expect_line(&format!(
            "[cycler] CYCLE reset while vCPU 1 is {state}: started=true"
        ));
    }
    // After every reset, vCPU 1 is off and the RAM vCPU 1 wrote is zero.
    for n in 1..=23 {
        run.expect_prefix(&format!("[cycler] TEST after-reset-{n}: PASS"));
    }
    run.expect_absent("[cycler] TEST after-reset-24");
    run.expect_line("[cycler] CYCLE 20 resets in a row done");
    let stop = run.expect_line("[cycler] CYCLE stop while vCPU 1 is spinning: started=true");
    let stopped = run.expect_line("[tessera] vm cycler: stopped");
    run.check(stop < stopped, "stopped after the stop request");
    run.expect_absent("[cycler] TEST stop: FAIL");
    expect_testguest_pass(&run, "bystander", 2);
    run.expect_line("[tessera] vm bystander: powered off");

    let summary = run.expect_prefix("[tessera] summary vm cycler (stopped, resets=23):");
    let after_first: Option<u64> = run.lines()[summary]
        .split(' ')
        .find_map(|f| f.strip_prefix("heap_free_after_reset_1="))
        .and_then(|v| v.parse().ok());
    let end = run.expect_prefix("[tessera] heap free at the end: ");
    let at_end: Option<u64> = run.lines()[end]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok());
    run.check(
        after_first.is_some() && after_first == at_end,
        &format!("22 more resets leave the heap as it was: {after_first:?} vs {at_end:?}"),
    );
    run.check(run.status == Some(1), "a stopped VM makes the run fail");
}

#[test]
fn stops_while_the_second_vcpu_sleeps_or_traps_end_both_vms() {
    let image = build_ok("tests/configs/lifecycle-stop.toml");
    let run = boot(&image, &[], DEADLINE);
    run.check(
        !run.timed_out,
        "both stops complete: the run ends by itself",
    );
    run.expect_absent("PANIC");
    run.expect_absent("TEST stop: FAIL");
    for (vm, state) in [("sleeper", "in-wfi"), ("trapper", "mid-trap")] {
        let started = run.expect_line(&format!(
            "[{vm}] CYCLE stop while vCPU 1 is {state}: started=true"
        ));
        let stopped = run.expect_line(&format!("[tessera] vm {vm}: stopped"));
        run.check(
            started < stopped,
            &format!("{vm} stopped after its request"),
        );
        run.expect_prefix(&format!("[tessera] summary vm {vm} (stopped, resets=0):"));
    }
    run.check(run.status == Some(1), "stopped VMs make the run fail");
}

/// The console monitor (Ctrl-]) stops a named VM while the others run on,
/// restarts it (it runs its checks again), starts a VM that powered off
/// again, and lists every VM's state and counters. Its keys reach no
/// guest.
#[test]
fn the_monitor_stops_and_restarts_a_named_vm_and_shows_its_counters() {
    let image = build_ok("tests/configs/monitor.toml");
    let run = boot_typing(
        &image,
        &[],
        DEADLINE,
        &[],
        &[
            Typing {
                after: "[tessera] vm checker: powered off",
                bytes: b"",
            },
            Typing {
                after: "[neighbour] HEARTBEAT 2 resets=0 ",
                bytes: b"\x1ds neighbour\r",
            },
            // While the neighbour is off: list, start the checker that
            // powered off again, leave, and type to the typist.
            Typing {
                after: "[tessera] vm neighbour: stopped",
                bytes: b"lr checker\rq",
            },
            Typing {
                after: "[tessera] monitor closed",
                bytes: b"ping\r",
            },
            Typing {
                after: "[typist] echo: got ping",
                bytes: b"\x1dr neighbour\rq",
            },
            // The neighbour beats again after its restart: list, stop it
            // for good, leave and power the typist off (the checker ends
            // by itself). The console takes the bytes in order.
            Typing {
                after: "[neighbour] HEARTBEAT 2 resets=1 ",
                bytes: b"\x1dls neighbour\rqoff\r",
            },
        ],
    );
    run.check(!run.timed_out, "the run ends by itself");
    run.expect_absent("PANIC");
    let lines = run.lines();
    let all = |prefix: &str| -> Vec<usize> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(prefix))
            .map(|(i, _)| i)
            .collect()
    };

    // Stop: the monitor says it, the neighbour stops, its heartbeat ends
    // there, and the typist still runs (it echoes what is typed next).
    let stop_cmds = all("[tessera] monitor: stop neighbour");
    let stopped = all("[tessera] vm neighbour: stopped");
    run.check(
        stop_cmds.len() == 2 && stopped.len() == 2,
        &format!("two stops and two stopped lines: {stop_cmds:?} {stopped:?}"),
    );
    run.check(stop_cmds[0] < stopped[0], "stopped after the command");
    let restart = run.expect_line("[tessera] monitor: restart neighbour");
    let reset = run.expect_line("[tessera] vm neighbour: reset #1");
    let beats_while_off = lines[stopped[0]..restart]
        .iter()
        .filter(|l| l.starts_with("[neighbour] HEARTBEAT"))
        .count();
    // A heartbeat line the guest had half-written when it stopped is
    // flushed just after the stopped line; no whole second more.
    run.check(
        beats_while_off <= 1,
        &format!("{beats_while_off} heartbeats while the neighbour was stopped"),
    );
    let ping = run.expect_line("[typist] echo: got ping");
    run.check(
        stopped[0] < ping && ping < restart,
        "the typist ran on while the neighbour was stopped",
    );

    // Restart: a fresh run of the neighbour, its checks (pattern, no
    // stray interrupt) passing again, with its reset counted.
    let again = run.expect_prefix("[neighbour] HEARTBEAT 1 resets=1 ");
    run.check(restart < reset && reset < again, "restarted, then beats");
    run.check(
        lines[again].contains(" irqs=0 pattern=intact "),
        &format!("the restarted neighbour's checks: {}", lines[again]),
    );

    // The checker had powered off; the monitor started it again and it
    // ran every check a second time.
    let start = run.expect_line("[tessera] monitor: restart checker");
    let results = all("[checker] RESULT: pass=");
    run.check(
        results.len() == 2,
        &format!("two checker runs: {results:?}"),
    );
    let checker_reset = run.expect_line("[tessera] vm checker: reset #1");
    run.check(
        results[0] < start && start < checker_reset && checker_reset < results[1],
        "the second run came from the monitor's start",
    );
    run.check(
        lines[results[1]] == lines[results[0]],
        "the second run passed as the first did",
    );

    // The lists: state, resets and counters of every VM.
    let list = |name: &str| all(&format!("[tessera]   vm {name}: "));
    let (n, c, t) = (list("neighbour"), list("checker"), list("typist"));
    run.check(
        n.len() == 2 && c.len() == 2 && t.len() == 2,
        "two lists of three VMs",
    );
    run.check(
        lines[n[0]] == "[tessera]   vm neighbour: off, 1 vCPU(s), resets=0"
            && lines[n[1]] == "[tessera]   vm neighbour: running, 1 vCPU(s), resets=1",
        &format!(
            "neighbour listed off, then running: {} / {}",
            lines[n[0]], lines[n[1]]
        ),
    );
    run.check(
        lines[t[0]] == "[tessera]   vm typist: running, 1 vCPU(s), resets=0, has input",
        &format!("typist listed running with input: {}", lines[t[0]]),
    );
    run.check(
        lines[c[1]] == "[tessera]   vm checker: running, 1 vCPU(s), resets=1"
            || lines[c[1]] == "[tessera]   vm checker: off, 1 vCPU(s), resets=1",
        &format!("checker listed with its reset: {}", lines[c[1]]),
    );
    // Each VM line is followed by its counters; the neighbour's prints
    // went through its UART (MMIO writes) and it caused no log line.
    for &i in n.iter().chain(&c).chain(&t) {
        let name = lines[i]
            .trim_start_matches("[tessera]   vm ")
            .split(':')
            .next()
            .unwrap_or("");
        let counters = lines.get(i + 1).copied().unwrap_or("");
        let value = |k: &str| -> Option<u64> {
            counters
                .split(' ')
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
        };
        run.check(
            counters.starts_with(&format!("[tessera]     {name} counters: mmio_read="))
                && value("mmio_write=").is_some_and(|w| w > 0)
                && value("log_lines=").is_some()
                && value("log_suppressed=").is_some(),
            &format!("counters after {}: {counters}", lines[i]),
        );
    }

    // Nothing typed in the monitor reached a guest.
    run.expect_absent("echo: got s neighbour");
    run.expect_absent("echo: got r ");
    run.expect_absent("echo: got lr");
    run.expect_line("[typist] echo: got off");
    run.expect_prefix("[tessera] summary vm neighbour (stopped, resets=1):");
    run.expect_prefix("[tessera] summary vm checker (powered-off, resets=1):");
    run.expect_prefix("[tessera] summary vm typist (powered-off, resets=0):");
    run.check(run.status == Some(1), "a stopped VM makes the run fail");
}

/// A hypervisor stack overflow (forced by the test-only `fault-injection`
/// build) ends in one report naming the overflowed stack, and the machine
/// stops: the fault vector runs on the core's emergency stack instead of
/// faulting again on the guard page for ever. A normal build refuses the
/// trigger and runs on.
#[test]
fn a_hypervisor_stack_overflow_ends_in_one_report_and_a_normal_build_has_no_trigger() {
    let b = build_with_features("tests/configs/hyp-fault.toml", "fault-injection");
    assert!(
        b.success,
        "building with fault-injection failed:\n{}",
        b.log
    );
    let run = boot(&b.image, &[], Duration::from_secs(120));
    run.check(!run.timed_out, "the machine stops by itself");
    let asked =
        run.expect_line("[overflower] OVERFLOW asking the hypervisor to overflow its stack");
    let report = run.expect_prefix(
        "hypervisor stack overflow on CPU 1: CPU 1's stack ran into its guard page (far ",
    );
    run.check(asked < report, "the report follows the request");
    let panics = run.lines().iter().filter(|l| l.contains("PANIC")).count();
    let overflows = run
        .lines()
        .iter()
        .filter(|l| l.contains("stack overflow"))
        .count();
    run.check(
        panics == 1 && overflows == 1,
        &format!("one report: {panics} panic lines, {overflows} overflow lines"),
    );
    run.check(run.status == Some(2), "a hypervisor panic exits with 2");

    let image = build_ok("tests/configs/hyp-fault.toml");
    let run = boot_until_all(
        &image,
        &[],
        DEADLINE,
        &[
            "[overflower] OVERFLOW refused: not a fault-injection build",
            "[bystander] HEARTBEAT 2 ",
        ],
    );
    run.check(!run.timed_out, "refused, and the bystander beats");
    run.expect_absent("PANIC");
    run.expect_absent("fault injection");
}

/// Longest a neighbour's heartbeat line may take to print while another VM
/// floods the console (guest time, one ~90-byte line). Measured in 8 runs
/// on the shared 2-core host under TCG, flood at 30-80 KB/s: 0.3-0.8 ms
/// undisturbed (host-scheduling spikes to 10 ms), 0.3-3.5 ms typically
/// under the flood, 38 ms at worst. Before a guest's UART access was
/// limited to writing its own output plus 8 bytes of others'
/// (`console/physical.rs`, `FOREIGN_BUDGET`), the neighbour's core wrote
/// out the flood for it and a line took up to 0.88 s while its loop never
/// stalled more than 35 ms. The test adds the run's own host noise (the
/// neighbour's longest stall outside its prints: 0.77 s once with the whole
/// suite running) to this bound; it still fails that old behaviour.
const FLOODED_PRINT_BOUND_US: u64 = 250_000;

/// A VM printing as fast as it can — whole lines, then one line that never
/// ends — neither starves the neighbour's output (every heartbeat of the
/// flood's seconds is on the console, in order) nor slows its progress or
/// its own prints beyond the bounds; the flood itself loses nothing.
#[test]
fn a_console_flood_neither_starves_nor_slows_the_neighbour() {
    let image = build_ok("tests/configs/console-flood.toml");
    let run = boot_until_all(
        &image,
        &[],
        DEADLINE,
        &["[flooder] FLOOD DONE", "[tessera] vm flooder: powered off"],
    );
    run.check(!run.timed_out, "the flood ends in time");
    run.expect_absent("PANIC");
    let lines = run.lines();
    let start = run.expect_line("[flooder] FLOOD lines start");
    let open = run.expect_line("[flooder] FLOOD open-line start");
    let done = run.expect_prefix("[flooder] FLOOD DONE lines=");
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split(' ')
            .find_map(|f| f.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    let flooded = field(lines[done], "lines=").unwrap_or(0);
    let rate = field(lines[done], "line-bytes-per-s=").unwrap_or(0);
    let open_rate = field(lines[done], "open-bytes-per-s=").unwrap_or(0);
    // It is a flood: the guest printed as fast as its UART took bytes.
    run.check(
        rate >= 5_000 && open_rate >= 5_000,
        &format!("flood rates {rate} and {open_rate} bytes/s"),
    );
    // The flood's own output is whole: every line it printed is there.
    let on_console = lines[start..open]
        .iter()
        .filter(|l| l.starts_with("[flooder] FLOOD 0"))
        .count() as u64;
    run.check(
        on_console == flooded,
        &format!("{flooded} flood lines printed, {on_console} on the console"),
    );

    // The neighbour: every heartbeat through the 8 s of flood, in order.
    // A line of its may be split by the flood (the console ends an open
    // line when another source's buffer fills), so beats are counted by
    // their number and print times read wherever the field landed.
    let beat_numbers: Vec<(usize, u64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.strip_prefix("[neighbour] HEARTBEAT ")?;
            Some((i, rest.split(' ').next()?.parse().ok()?))
        })
        .collect();
    let during: Vec<u64> = beat_numbers
        .iter()
        .filter(|b| b.0 > start && b.0 < done)
        .map(|b| b.1)
        .collect();
    run.check(
        during.len() >= 6,
        &format!(
            "{} heartbeats on the console during the 8 s flood",
            during.len()
        ),
    );
    run.check(
        during.windows(2).all(|w| w[1] == w[0] + 1),
        &format!("no heartbeat missing during the flood: {during:?}"),
    );
    run.check(
        beat_numbers.iter().any(|b| b.0 > open && b.0 < done),
        "heartbeats got through the endless line too",
    );
    // print-us is the previous line's: every one printed after the flood's
    // first heartbeat covers a line printed under the flood.
    let first_during = beat_numbers
        .iter()
        .find(|b| b.0 > start)
        .map_or(usize::MAX, |b| b.0);
    let prints: Vec<u64> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i > first_during && *i < done && l.starts_with("[neighbour] "))
        .filter_map(|(_, l)| field(l, "print-us="))
        .collect();
    let slowest = prints.iter().copied().max().unwrap_or(u64::MAX);
    run.check(
        prints.len() + 1 >= during.len(),
        &format!("print times of the flood's heartbeats: {prints:?}"),
    );
    let gap = lines
        .iter()
        .filter(|l| l.starts_with("[neighbour] "))
        .filter_map(|l| field(l, "max-gap-us="))
        .max()
        .unwrap_or(u64::MAX);
    // The neighbour's longest stall outside its prints is the host's
    // scheduling noise in this run (a loaded CI host deschedules vCPU
    // threads for a good part of a second); a print may suffer it too.
    let bound = FLOODED_PRINT_BOUND_US + gap;
    run.check(
        slowest <= bound,
        &format!(
            "neighbour's slowest print under the flood {slowest} us, bound {FLOODED_PRINT_BOUND_US} us + its longest stall outside prints {gap} us"
        ),
    );
    run.check(
        gap <= HEARTBEAT_GAP_BOUND_US,
        &format!("neighbour's longest gap {gap} us within {HEARTBEAT_GAP_BOUND_US} us"),
    );
    eprintln!(
        "console flood: {rate} and {open_rate} bytes/s; neighbour: {} beats during it, prints {prints:?} us, longest gap {gap} us",
        during.len()
    );
}
