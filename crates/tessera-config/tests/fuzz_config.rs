//! Fuzz (property) targets for the config parser and validator; see
//! docs/TESTING.md. Three input sources, one oracle:
//!
//! - `config_text`: arbitrary text and byte-level edits of the repository's
//!   configs: parsing and validation never panic;
//! - `config_mutate`: the repository's configs with their TOML trees
//!   mutated (values replaced or nudged, keys dropped or added, tables
//!   duplicated);
//! - `config_generate`: boards and systems built from an address grid so
//!   near misses are common.
//!
//! Whatever the validator accepts must satisfy [`accepted_invariants`], an
//! independent statement of what partitioning means (no memory, CPU,
//! device or IRQ shared; nothing overlapping the hypervisor), and must go
//! through code generation without a panic.
#![cfg(feature = "build")]

use std::path::{Path, PathBuf};

use tessera_config::build::{
    board_layout_ld, check_strs, parse_image_header, plan, system_rs, BoardSpec, KernelSpec, Plan,
    SystemSpec,
};
use tessera_config::{
    Arch, GicVersion, MemRange, GICC_SIZE, GICD_SIZE, GICR_STRIDE, GICV2_GICD_SIZE,
};
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};
use toml::{Table, Value};

// --- The oracle --------------------------------------------------------------

/// A half-open range with a 128-bit end (no overflow).
#[derive(Clone, Copy)]
struct Range(u128, u128);

impl std::fmt::Debug for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.0, self.1)
    }
}

impl Range {
    fn new(base: u64, size: u64) -> Self {
        Self(base.into(), u128::from(base) + u128::from(size))
    }
    fn of(r: &MemRange) -> Self {
        Self::new(r.base, r.size)
    }
    fn meets(self, o: Range) -> bool {
        self.0 < o.1 && o.0 < self.1
    }
    fn inside(self, o: Range) -> bool {
        self.0 >= o.0 && self.1 <= o.1
    }
    fn has(self, addr: u64) -> bool {
        (self.0..self.1).contains(&addr.into())
    }
}

const IPA_LIMIT: u128 = 1 << 39;

/// What an accepted configuration guarantees.
fn accepted_invariants(sys: &SystemSpec, board: &BoardSpec) -> Result<(), String> {
    let banks: Vec<Range> = board.memory.iter().map(Range::of).collect();
    let hyp = Range::of(&board.hypervisor);
    let console = Range::of(&board.console);
    let in_one_bank = |r: Range| banks.iter().any(|b| r.inside(*b));
    let touches_ram = |r: Range| banks.iter().any(|b| r.meets(*b));
    let ensure = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };

    ensure(in_one_bank(hyp), format!("hypervisor {hyp:?} outside RAM"))?;
    // An x86 console is I/O ports, not memory.
    ensure(
        board.arch != Arch::Aarch64 || !touches_ram(console),
        "console in RAM".into(),
    )?;
    // The physical GIC: distributor and one redistributor per CPU (x86
    // boards have none: empty ranges meet nothing).
    let has_gic = board.arch == Arch::Aarch64;
    let gic_range = |base: u64, size: u64| {
        if has_gic {
            Range::new(base, size)
        } else {
            Range::new(0, 0)
        }
    };
    // GICv2: 4 KiB distributor, two-page CPU interface (the GIC-400 packs
    // them 4 KiB apart); GICv3: 64 KiB distributor, redistributors.
    let cpus_total = board.cpu_mpidrs.len() as u64;
    let (gicd_size, second_size) = match board.gic.version {
        GicVersion::V2 => (GICV2_GICD_SIZE, GICC_SIZE),
        GicVersion::V3 => (GICD_SIZE, cpus_total * GICR_STRIDE),
    };
    let gicd = gic_range(board.gic.gicd_base, gicd_size);
    let gicr = gic_range(board.gic.gicr_or_gicc_base, second_size);
    for f in [gicd, gicr] {
        ensure(
            !touches_ram(f) && !f.meets(console),
            format!("GIC frames {f:?} on RAM or the console"),
        )?;
    }
    ensure(
        !gicd.meets(gicr),
        "GIC distributor on redistributors".into(),
    )?;
    for (i, d) in board.devices.iter().enumerate() {
        let r = Range::of(&d.mmio);
        ensure(
            !touches_ram(r),
            format!("board device {} {r:?} in RAM", d.name),
        )?;
        ensure(
            !r.meets(console),
            format!("board device {} on the console", d.name),
        )?;
        ensure(
            !r.meets(gicd) && !r.meets(gicr),
            format!("board device {} {r:?} on the GIC", d.name),
        )?;
        for o in &board.devices[..i] {
            ensure(
                !r.meets(Range::of(&o.mmio)),
                format!("board devices {} and {} overlap", d.name, o.name),
            )?;
        }
    }

    // Every host byte of RAM has at most one owner, and never the hypervisor.
    let mut host_ram: Vec<(usize, Range)> = Vec::new();
    let mut cpus: Vec<usize> = Vec::new();
    let mut devices: Vec<&str> = Vec::new();
    let mut irqs: Vec<u32> = Vec::new();
    for (v, vm) in sys.vms.iter().enumerate() {
        let who = format!("vm {:?}", vm.name);
        for o in &sys.vms[..v] {
            ensure(
                o.id != vm.id && o.name != vm.name,
                format!("{who}: id or name shared"),
            )?;
        }
        ensure(!vm.phys_cpu_ids.is_empty(), format!("{who}: no CPU"))?;
        for &c in &vm.phys_cpu_ids {
            ensure(
                c < board.cpu_mpidrs.len(),
                format!("{who}: CPU {c} does not exist"),
            )?;
            ensure(!cpus.contains(&c), format!("{who}: CPU {c} is not its own"))?;
            cpus.push(c);
        }
        let mut guest: Vec<Range> = Vec::new();
        for r in &vm.memory_regions {
            let (h, g) = (Range::new(r.hpa, r.size), Range::new(r.gpa, r.size));
            ensure(
                r.size > 0 && (r.hpa | r.gpa | r.size) % 0x1000 == 0,
                format!("{who}: region {r:x?} not page-granular"),
            )?;
            ensure(
                in_one_bank(h),
                format!("{who}: host {h:?} not in one RAM bank"),
            )?;
            ensure(
                !h.meets(hyp),
                format!("{who}: host {h:?} overlaps the hypervisor"),
            )?;
            if let Some((owner, o)) = host_ram.iter().find(|(_, o)| h.meets(*o)) {
                return Err(format!(
                    "{who}: host {h:?} overlaps {o:?} of vm {:?}",
                    sys.vms[*owner].name
                ));
            }
            host_ram.push((v, h));
            ensure(
                g.1 <= IPA_LIMIT && !guest.iter().any(|o| g.meets(*o)),
                format!("{who}: guest {g:?}"),
            )?;
            guest.push(g);
        }
        if let KernelSpec::BareMetal {
            kernel_load_addr,
            entry_point,
            ..
        } = vm.kernel
        {
            for addr in [kernel_load_addr, entry_point] {
                ensure(
                    guest.iter().any(|g| g.has(addr)),
                    format!("{who}: kernel address {addr:#x} outside RAM"),
                )?;
            }
        }
        // Device windows (the virtual GIC's first): inside the IPA space,
        // off RAM, off each other. Interrupts: each owned once in the VM
        // (emulated or passthrough), passthrough ones by one VM only.
        let vgic = vm.vgic_layout(board);
        let mut windows = Vec::new();
        if has_gic {
            let (gicd, second) = match board.gic.version {
                GicVersion::V2 => (GICV2_GICD_SIZE, GICC_SIZE),
                GicVersion::V3 => (GICD_SIZE, vm.phys_cpu_ids.len() as u64 * GICR_STRIDE),
            };
            windows.push(Range::new(vgic.gicd_gpa, gicd));
            windows.push(Range::new(vgic.gicr_gpa, second));
        }
        windows.extend(vm.emu_devices.iter().map(|d| Range::new(d.gpa, d.size)));
        let mut own_irqs: Vec<u32> = vm.emu_devices.iter().filter_map(|d| d.irq).collect();
        for p in &vm.passthrough_devices {
            let dev = board
                .devices
                .iter()
                .find(|d| d.name == p.name)
                .ok_or(format!("{who}: no device {}", p.name))?;
            ensure(
                !devices.contains(&p.name.as_str()),
                format!("{who}: device {} is not its own", p.name),
            )?;
            devices.push(&p.name);
            windows.push(Range::new(p.gpa.unwrap_or(dev.mmio.base), dev.mmio.size));
            if dev.dma {
                // No IOMMU: a DMA master's VM must see host addresses.
                ensure(
                    vm.memory_regions.iter().all(|r| r.gpa == r.hpa),
                    format!("{who}: DMA master {} without identity-mapped RAM", p.name),
                )?;
            }
            for irq in p.irqs.as_ref().unwrap_or(&dev.irqs) {
                ensure(
                    dev.irqs.contains(irq),
                    format!("{who}: INTID {irq} not of {}", p.name),
                )?;
                ensure(
                    !irqs.contains(irq),
                    format!("{who}: INTID {irq} is not its own"),
                )?;
                irqs.push(*irq);
                own_irqs.push(*irq);
            }
        }
        for (i, irq) in own_irqs.iter().enumerate() {
            ensure(
                (32..1020).contains(irq) && !own_irqs[..i].contains(irq),
                format!("{who}: INTID {irq} twice or not an SPI"),
            )?;
        }
        for (i, w) in windows.iter().enumerate() {
            ensure(
                w.1 <= IPA_LIMIT && w.1 > w.0,
                format!("{who}: window {w:?}"),
            )?;
            ensure(
                !guest.iter().any(|g| w.meets(*g)),
                format!("{who}: window {w:?} over its RAM"),
            )?;
            ensure(
                !windows[..i].iter().any(|o| w.meets(*o)),
                format!("{who}: windows overlap at {w:?}"),
            )?;
        }
    }
    Ok(())
}

/// What a plan guarantees: each VM's images lie in its guest RAM and do
/// not overlap each other (a Linux kernel counted with its BSS, as its
/// header's `image_size` says), and its entry point is in RAM.
fn plan_invariants(sys: &SystemSpec, plan: &Plan, inputs: &Inputs) -> Result<(), String> {
    for (vm, p) in sys.vms.iter().zip(&plan.vms) {
        let ram: Vec<Range> = vm
            .memory_regions
            .iter()
            .map(|r| Range::new(r.gpa, r.size))
            .collect();
        if !ram.iter().any(|g| g.has(p.entry_point)) {
            return Err(format!(
                "vm {:?}: entry {:#x} outside RAM",
                vm.name, p.entry_point
            ));
        }
        let mut placed: Vec<Range> = Vec::new();
        for img in &p.images {
            let mut len = plan
                .blobs
                .get(img.blob)
                .ok_or("blob index out of range")?
                .len;
            if let (KernelSpec::Linux(l), "kernel") = (&vm.kernel, img.name) {
                let bytes = inputs
                    .get(&l.kernel_path)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if let Ok(h) = parse_image_header(&bytes) {
                    len = len.max(h.image_size);
                }
            }
            if len == 0 {
                continue; // a file missing in a host build: nothing placed
            }
            let r = Range::new(img.gpa, len);
            if !ram.iter().any(|g| r.inside(*g)) || placed.iter().any(|o| o.meets(r)) {
                return Err(format!(
                    "vm {:?}: {} at {r:?} outside RAM or over another image {placed:?}",
                    vm.name, img.name
                ));
            }
            placed.push(r);
        }
    }
    Ok(())
}

/// What a file named by a config holds: missing (allowed or not), empty,
/// a page of zeros, bytes from the input, or more than small regions hold.
#[derive(Debug, Clone)]
enum FileContents {
    Missing,
    Required,
    Bytes(Vec<u8>),
    Large,
}

/// The files a config names: a Linux `Image` gets `image` when there is
/// one (a header built from the input), every other file `other`.
#[derive(Debug, Clone)]
struct Inputs {
    other: FileContents,
    image: Option<Vec<u8>>,
}

impl Inputs {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        if let (Some(image), true) = (&self.image, path.ends_with("Image")) {
            return Ok(Some(image.clone()));
        }
        match &self.other {
            FileContents::Missing => Ok(None),
            FileContents::Required => Err(String::from("missing")),
            FileContents::Bytes(b) => Ok(Some(b.clone())),
            FileContents::Large => Ok(Some(vec![0; 0x20_1000])),
        }
    }
}

/// An arm64 `Image` header (magic at 0x38) with text_offset, image_size
/// and flags from the input, and some bytes after it.
fn image() -> impl Strategy<Value = Vec<u8>> {
    let text_offset = prop_oneof![
        Just(0u64),
        Just(0x8_0000),
        any::<u64>().prop_map(|t| t % 0x40_0000)
    ];
    let image_size = prop_oneof![
        Just(0u64),
        (1u64..0x400).prop_map(|p| p * 0x1000),
        Just(0x4000_0000),
        any::<u64>()
    ];
    let flags = prop_oneof![Just(0u64), Just(0xa), 0u64..16, any::<u64>()];
    (text_offset, image_size, flags, 0usize..512).prop_map(|(t, size, flags, extra)| {
        let mut b = vec![0u8; 64 + extra];
        b[0x08..0x10].copy_from_slice(&t.to_le_bytes());
        b[0x10..0x18].copy_from_slice(&size.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b
    })
}

fn inputs() -> impl Strategy<Value = Inputs> {
    let other = prop_oneof![
        4 => Just(FileContents::Missing),
        4 => Just(FileContents::Bytes(vec![0; 4096])),
        1 => Just(FileContents::Bytes(Vec::new())),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(FileContents::Bytes),
        1 => Just(FileContents::Large),
        1 => Just(FileContents::Required),
    ];
    (other, prop::option::weighted(0.7, image())).prop_map(|(other, image)| Inputs { other, image })
}

/// Checks a (system, board) text pair: no panic anywhere; an accepted pair
/// keeps the invariants, and is planned and generated (or the plan says
/// why not). Returns the class for the report.
fn validate(
    system: &str,
    board: &str,
    inputs: &Inputs,
) -> Result<Option<&'static str>, TestCaseError> {
    let files = |path: &str| inputs.get(path);
    match check_strs("sys.toml", system, "board.toml", board, &files) {
        Ok((sys, b)) => {
            let verdict = accepted_invariants(&sys, &b);
            check(verdict.is_ok(), || {
                format!(
                    "accepted, but {}\n--- system\n{system}\n--- board\n{board}",
                    verdict.unwrap_err()
                )
            })?;
            let _ = board_layout_ld(&b, "fuzz", 0);
            let path_of = |p: &str| PathBuf::from("/fuzz").join(p);
            match plan(("sys.toml", "board.toml"), &sys, &b, &files, &path_of) {
                Ok(plan) => {
                    let verdict = plan_invariants(&sys, &plan, inputs);
                    check(verdict.is_ok(), || {
                        format!(
                            "planned, but {}\n--- system\n{system}",
                            verdict.unwrap_err()
                        )
                    })?;
                    let _ = system_rs(&b, &sys, &plan, "fuzz");
                    Ok(Some(if sys.vms.iter().any(|v| v.is_linux()) {
                        "accepted with Linux"
                    } else {
                        "accepted"
                    }))
                }
                Err(errors) => {
                    check(!errors.is_empty(), || "plan refused with no error".into())?;
                    Ok(Some("accepted, plan refused"))
                }
            }
        }
        Err(errors) => {
            check(!errors.is_empty(), || "rejected with no error".into())?;
            // Messages are printed by the build: formatting must hold too.
            let _ = errors.iter().map(ToString::to_string).collect::<Vec<_>>();
            Ok(Some("rejected"))
        }
    }
}

// --- Seeds: the repository's configs ----------------------------------------

struct Seed {
    system: String,
    board: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every system config in `configs/` and `tests/configs/` with the board
/// file it names, read when the test runs so new configs are fuzzed too.
fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for dir in ["configs", "tests/configs"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        {
            let Ok(system) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Some(board_rel) = tessera_config::build::board_path_of(&system) else {
                continue;
            };
            let Some(dir) = path.parent() else { continue };
            if let Ok(board) = std::fs::read_to_string(dir.join(board_rel)) {
                out.push(Seed { system, board });
            }
        }
    }
    assert!(
        out.len() >= 3,
        "config seeds not found under {}",
        repo().display()
    );
    out
}

// --- Target 1: text ----------------------------------------------------------

const TOKENS: &[&str] = &[
    "\n",
    " ",
    "=",
    "[",
    "]",
    "[[vm]]",
    "[vm.base]",
    "[[vm.memory_regions]]",
    "[gic]",
    "{",
    "}",
    ",",
    ".",
    "\"",
    "'",
    "#",
    "0x",
    "0x4000_0000",
    "0x1000",
    "-1",
    "9223372036854775807",
    "1e3",
    "true",
    "inf",
    "board",
    "vm",
    "base",
    "id",
    "name",
    "phys_cpu_ids",
    "memory",
    "size",
    "gpa",
    "hpa",
    "kernel",
    "devices",
    "emu_devices",
    "\"pl011\"",
    "irqs",
    "[0, 1]",
    "\u{0}",
    "é",
    "\\u0000",
    "\"\"\"",
    "1979-05-27T07:32:00Z",
];

#[derive(Debug, Clone)]
enum Text {
    Any(String),
    Tokens(Vec<usize>),
    /// Seed index, which file (system or board), and (position, op, token) edits.
    Edited(usize, bool, Vec<(usize, u8, usize)>),
}

fn render(text: &Text, seeds: &[Seed]) -> (String, String) {
    match text {
        Text::Any(s) => (s.clone(), s.clone()),
        Text::Tokens(t) => {
            let s: String = t.iter().map(|i| TOKENS[i % TOKENS.len()]).collect();
            (s.clone(), s)
        }
        Text::Edited(seed, board, edits) => {
            let seed = &seeds[seed % seeds.len()];
            let mut s = if *board {
                seed.board.clone()
            } else {
                seed.system.clone()
            };
            for &(pos, op, tok) in edits {
                let mut at = pos % (s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                let end = s[at..]
                    .char_indices()
                    .nth(1)
                    .map_or(s.len(), |(i, _)| at + i);
                match op % 3 {
                    0 => s.insert_str(at, TOKENS[tok % TOKENS.len()]),
                    1 => s.replace_range(at..end, ""),
                    _ => s.replace_range(at..end, TOKENS[tok % TOKENS.len()]),
                }
            }
            if *board {
                (seed.system.clone(), s)
            } else {
                (s, seed.board.clone())
            }
        }
    }
}

#[test]
fn fuzz_config_text() {
    let seeds = seeds();
    let text = prop_oneof![
        1 => any::<String>().prop_map(Text::Any),
        1 => prop::collection::vec(any::<usize>(), 0..60).prop_map(Text::Tokens),
        4 => (any::<usize>(), any::<bool>(), prop::collection::vec(any::<(usize, u8, usize)>(), 1..6))
            .prop_map(|(s, b, e)| Text::Edited(s, b, e)),
    ];
    run_classified("config_text", (text, inputs()), |(text, file)| {
        let (system, board) = render(&text, &seeds);
        let _ = tessera_config::build::board_path_of(&system);
        validate(&system, &board, &file)
    });
}

// --- Target 2: tree mutations ------------------------------------------------

/// A step into a TOML tree.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path to a value of `v` (the root is the empty path).
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Table(t) => {
            for (k, child) in t {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(v, |v, step| match (v, step) {
        (Value::Table(t), Step::Key(k)) => t.get_mut(k),
        (Value::Array(a), Step::Index(i)) => a.get_mut(*i),
        _ => None,
    })
}

const KEYS: &[&str] = &[
    "id",
    "name",
    "phys_cpu_ids",
    "gpa",
    "hpa",
    "size",
    "base",
    "kind",
    "irqs",
    "on_unhandled",
    "board",
    "vm",
    "memory_regions",
    "devices",
    "emu_devices",
    "passthrough_devices",
    "unknown",
    "gicc_base",
    "gicr_base",
];
const STRINGS: &[&str] = &[
    "",
    "alpha",
    "beta",
    "pl011",
    "ram",
    "uart1",
    "stop-vm",
    "restart-vm",
    "inject-abort",
    "UPPER",
    "a-very-long-vm-name",
    "boards/qemu-virt.toml",
];

/// Integers a mutation may write: edges of every rule, or near the old value.
fn integer(old: Option<i64>, pick: u64) -> i64 {
    let edges = [
        0,
        1,
        -1,
        0xfff,
        0x1000,
        0x1001,
        0x1f_ffff,
        0x20_0000,
        0x400_0000,
        0x4000_0000,
        1 << 39,
        (1 << 39) - 0x1000,
        i64::MAX,
        i64::MAX - 0xfff,
        31,
        32,
        1019,
        1020,
        7,
        8,
        65535,
        65536,
        4095,
        4096,
    ];
    let step = [0x1000, 0x20_0000, 0x100_0000, 0x4000_0000][(pick >> 8) as usize % 4];
    let k = (pick >> 16) as i64 % 9 - 4;
    match (old, pick % 4) {
        (Some(o), 0 | 1) => o.saturating_add(k.saturating_mul(step)),
        (Some(o), 2) => o.wrapping_mul(2),
        _ => edges[(pick >> 24) as usize % edges.len()],
    }
}

fn mutate(root: &mut Value, op: u8, which: usize, arg: u64) {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    let path = &all[which % all.len()];
    let Some(target) = at(root, path) else { return };
    let old = target.as_integer();
    match op % 8 {
        // Integers, most often: the rules are mostly about addresses.
        0..=2 => *target = Value::Integer(integer(old, arg)),
        3 => *target = Value::String(STRINGS[arg as usize % STRINGS.len()].into()),
        4 => match target {
            // Duplicate an element: a second VM, region, device or CPU.
            Value::Array(a) if !a.is_empty() => {
                let copy = a[arg as usize % a.len()].clone();
                a.push(copy);
            }
            Value::Table(t) => {
                t.insert(
                    KEYS[arg as usize % KEYS.len()].into(),
                    Value::Integer(integer(None, arg)),
                );
            }
            other => *other = Value::Array(vec![other.clone()]),
        },
        5 => match target {
            Value::Array(a) if !a.is_empty() => {
                a.remove(arg as usize % a.len());
            }
            Value::Table(t) if !t.is_empty() => {
                let key = t.keys().nth(arg as usize % t.len()).cloned();
                if let Some(k) = key {
                    t.remove(&k);
                }
            }
            other => *other = Value::Boolean(arg.is_multiple_of(2)),
        },
        6 => *target = Value::Table(Table::new()),
        _ => *target = Value::Array(Vec::new()),
    }
}

#[test]
fn fuzz_config_mutate() {
    let seeds = seeds();
    let parsed: Vec<(Value, Value)> = seeds
        .iter()
        .filter_map(|s| {
            Some((
                Value::Table(s.system.parse().ok()?),
                Value::Table(s.board.parse().ok()?),
            ))
        })
        .collect();
    let mutation = (any::<bool>(), any::<u8>(), any::<usize>(), any::<u64>());
    let input = (
        any::<usize>(),
        prop::collection::vec(mutation, 1..5),
        inputs(),
    );
    let classes = run_classified("config_mutate", input, |(seed, mutations, file)| {
        let (mut system, mut board) = parsed[seed % parsed.len()].clone();
        for (on_board, op, which, arg) in mutations {
            mutate(
                if on_board { &mut board } else { &mut system },
                op,
                which,
                arg,
            );
        }
        // Mutations can make trees TOML cannot write (a table where a value
        // must be): those inputs are counted, not validated.
        let (Ok(system), Ok(board)) = (toml::to_string(&system), toml::to_string(&board)) else {
            return Ok(Some("unwritable"));
        };
        validate(&system, &board, &file)
    });
    assert!(
        classes.count("accepted") > 0,
        "no mutated config was accepted: the invariants were never checked"
    );
}

// --- Target 3: generated configs --------------------------------------------

/// Draws choices from a tape of random numbers (zero once it runs out, so
/// shrinking the tape simplifies the config).
struct Tape<'a>(std::slice::Iter<'a, u64>);

impl Tape<'_> {
    fn next(&mut self) -> u64 {
        self.0.next().copied().unwrap_or(0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True about one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == n - 1
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// Usually 0; now and then a page or 2 MiB either way, or half a page.
    fn nudge(&mut self) -> i64 {
        match self.below(40) {
            0..=3 => self.pick(&[-0x20_0000, -0x1000, 0x1000, 0x20_0000]),
            4 => 0x800,
            _ => 0,
        }
    }
}

fn at_offset(base: u64, delta: i64) -> u64 {
    base.saturating_add_signed(delta)
}

/// A generated board and what the system generator needs to know of it.
struct Board {
    text: String,
    cpus: u64,
    devices: u64,
    hyp_end: u64,
}

/// A board: RAM at 1 GiB (and sometimes 4 GiB), the hypervisor at the
/// start of RAM, devices next to the console.
fn gen_board(t: &mut Tape) -> Board {
    let cpus = t.pick(&[1, 2, 4, 8, 8, 8]);
    // Now and then one MPIDR is listed again in place of the next.
    let twice = t.one_in(30).then(|| t.below(cpus));
    let mpidrs: Vec<String> = (0..cpus)
        .map(|c| {
            format!(
                "{:#x}",
                if twice.map(|w| w + 1) == Some(c) {
                    c - 1
                } else {
                    c
                }
            )
        })
        .collect();
    let ram_size = t.pick(&[0x4000_0000u64, 0x2000_0000]);
    let mut text = format!(
        "name = \"fuzz\"\ncpu_mpidrs = [{}]\n[[memory]]\nbase = 0x4000_0000\nsize = {ram_size:#x}\n",
        mpidrs.join(", ")
    );
    if t.one_in(3) {
        text += "[[memory]]\nbase = 0x1_0000_0000\nsize = 0x4000_0000\n";
    }
    let hyp_size = t.pick(&[0x400_0000u64, 0x400_0000, 0x100_0000]);
    let hyp_base = at_offset(0x4000_0000, t.nudge());
    text += &format!("[hypervisor]\nbase = {hyp_base:#x}\nsize = {hyp_size:#x}\n");
    text += "[console]\nbase = 0x0900_0000\nsize = 0x1000\n\
             [gic]\nversion = 3\ngicd_base = 0x0800_0000\ngicr_base = 0x080A_0000\n";
    let devices = t.below(4);
    for d in 0..devices {
        let base = at_offset(0x0904_0000 + d * 0x1_0000, t.nudge());
        let irqs: Vec<String> = (0..t.below(3))
            .map(|i| (if t.one_in(30) { 31 } else { 32 + d * 4 + i }).to_string())
            .collect();
        text += &format!(
            "[[devices]]\nname = \"dev{d}\"\nbase = {base:#x}\nsize = 0x1000\nirqs = [{}]\n",
            irqs.join(", ")
        );
    }
    Board {
        text,
        cpus,
        devices,
        hyp_end: hyp_base + hyp_size,
    }
}

/// A system: VMs take CPUs and host RAM one after another, each choice
/// now and then nudged into a neighbour's or off the rules.
fn gen_system(t: &mut Tape, board: &Board) -> String {
    let mut s = String::from("board = \"boards/fuzz.toml\"\n");
    let mut host = at_offset(board.hyp_end, t.nudge());
    let mut cpu = 0;
    for v in 0..1 + t.below(board.cpus.min(4)) {
        let id = if t.one_in(30) { t.below(9) } else { v };
        let name = if t.one_in(30) {
            "alpha"
        } else {
            ["alpha", "beta", "gamma", "delta"][v as usize]
        };
        let mut vcpus = Vec::new();
        for _ in 0..1 + t.below(2) {
            vcpus.push(
                if t.one_in(30) {
                    t.below(board.cpus + 1)
                } else {
                    cpu
                }
                .to_string(),
            );
            cpu += 1;
        }
        let policy = t.pick(&["inject-abort", "stop-vm", "restart-vm"]);
        s += &format!(
            "[[vm]]\n[vm.base]\nid = {id}\nname = \"{name}\"\nphys_cpu_ids = [{}]\non_unhandled = \"{policy}\"\n",
            vcpus.join(", ")
        );
        let entry = if t.one_in(30) {
            0x3fff_f000u64
        } else {
            0x4000_0000
        };
        s += &format!("[vm.kernel]\nkernel_path = \"g.bin\"\nkernel_load_addr = {entry:#x}\nentry_point = {entry:#x}\n");
        let mut gpa = 0x4000_0000u64;
        for _ in 0..1 + t.below(3) {
            let size = t.pick(&[0x1000u64, 0x10_0000, 0x200_0000]);
            let hpa = host;
            s += &format!(
                "[[vm.memory_regions]]\ngpa = {gpa:#x}\nhpa = {hpa:#x}\nsize = {size:#x}\n"
            );
            host = at_offset(hpa + size, t.nudge());
            gpa = at_offset(gpa + size, t.nudge());
        }
        let uart = at_offset(0x0900_0000, t.nudge());
        s += &format!("[vm.devices]\nemu_devices = [{{ kind = \"pl011\", gpa = {uart:#x}, size = 0x1000 }}]\n");
        if board.devices > 0 && t.one_in(2) {
            // Usually the device of the same index as the VM (so seldom shared).
            let dev = if t.one_in(10) {
                t.below(board.devices + 1)
            } else {
                v % board.devices
            };
            let gpa = match t.below(3) {
                0 => String::new(),
                _ => format!(
                    ", gpa = {:#x}",
                    at_offset(0x0a00_0000 + dev * 0x1000, t.nudge())
                ),
            };
            s += &format!("passthrough_devices = [{{ name = \"dev{dev}\"{gpa} }}]\n");
        }
    }
    s
}

#[test]
fn fuzz_config_generate() {
    let input = (prop::collection::vec(any::<u64>(), 0..200), inputs());
    let classes = run_classified("config_generate", input, |(tape, file)| {
        let mut t = Tape(tape.iter());
        let board = gen_board(&mut t);
        let system = gen_system(&mut t, &board);
        validate(&system, &board.text, &file)
    });
    let (accepted, cases) = (classes.count("accepted"), u64::from(tessera_fuzz::cases()));
    assert!(
        accepted * 100 >= cases,
        "only {accepted} of {cases} generated configs were accepted: the generator no longer \
         matches the config format (new required fields?); update gen_board/gen_system"
    );
}
