//! TOML → [`BoardSpec`] / [`SystemSpec`]: shape checks only (unknown,
//! missing and mistyped fields). Rules about values live in `validate`.

use toml::{Table, Value};

mod channel;
mod pool;

use super::model::{
    BoardSpec, DeviceSpec, KernelSpec, LinuxSpec, PassthroughSpec, SystemSpec, Trigger, VmSpec,
};
use super::ConfigError;
use crate::{
    Arch, Bcm2711, EmuDevice, EmuDeviceKind, FaultPolicy, GicDesc, GicVersion, MemRange,
    MemoryRegion, RegionKind, UnhandledPolicy, VgicLayout,
};

#[path = "x86_parse.rs"]
mod x86;

/// Parses a board file. `file` is only used in messages.
pub fn parse_board(file: &str, src: &str) -> Result<BoardSpec, Vec<ConfigError>> {
    let root = parse_toml(file, src)?;
    let mut r = Reader::new(file, "board");
    let board = r.board(&root);
    r.finish(board)
}

/// Parses a system file. `file` is only used in messages.
pub fn parse_system(file: &str, src: &str) -> Result<SystemSpec, Vec<ConfigError>> {
    let root = parse_toml(file, src)?;
    let mut r = Reader::new(file, "");
    let system = r.system(&root);
    r.finish(system)
}

/// The `board` string of a system file, if it can be read at all; lets the
/// loader check the board file even when the system file has other errors.
pub fn board_path_of(src: &str) -> Option<String> {
    let root: Table = toml::from_str(src).ok()?;
    root.get("board")?.as_str().map(str::to_owned)
}

/// A board file that starts from another: `extends = "<file>"` (relative to
/// the same directory) takes every top-level key of that file and replaces
/// the ones this file gives (whole keys: `memory` replaces `memory`). One
/// level only. Used for board variants that differ in a few keys, like the
/// Raspberry Pi 4's RAM sizes. Returns the merged TOML text and the base
/// file's name, or the text unchanged and `None`; `read` reads a sibling
/// file.
pub fn resolve_board_extends(
    src: &str,
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<(String, Option<String>), String> {
    let Ok(mut variant) = toml::from_str::<Table>(src) else {
        // Syntax errors are reported by the parser with their position.
        return Ok((src.to_owned(), None));
    };
    let base_name = match variant.remove("extends") {
        None => return Ok((src.to_owned(), None)),
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("extends: expected a file name, found {other}")),
    };
    let base_src = read(&base_name)?;
    let mut base: Table = toml::from_str(&base_src)
        .map_err(|e| format!("extends: {base_name}: {}", e.message().trim()))?;
    if base.contains_key("extends") {
        return Err(format!(
            "extends: {base_name} extends another file itself; one level only"
        ));
    }
    for (key, value) in variant {
        base.insert(key, value);
    }
    Ok((base.to_string(), Some(base_name)))
}

fn parse_toml(file: &str, src: &str) -> Result<Table, Vec<ConfigError>> {
    toml::from_str::<Table>(src).map_err(|e| {
        let at = match e.span() {
            Some(span) => {
                let (line, col) = line_col(src, span.start);
                format!("line {line}, column {col}")
            }
            None => String::from("syntax"),
        };
        vec![ConfigError::new(
            file,
            "",
            at,
            e.message().trim().to_owned(),
        )]
    })
}

/// 1-based line and column of byte `offset`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks TOML values, collecting every shape error instead of stopping at
/// the first one. Getters return `None` after recording an error.
struct Reader {
    file: String,
    scope: String,
    errors: Vec<ConfigError>,
}

impl Reader {
    fn new(file: &str, scope: &str) -> Self {
        Self {
            file: file.to_owned(),
            scope: scope.to_owned(),
            errors: Vec::new(),
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<ConfigError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(self.errors),
        }
    }

    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(
            &self.file,
            &self.scope,
            field.to_owned(),
            message.into(),
        ));
    }

    /// Records every key of `t` that is not in `allowed`.
    fn keys(&mut self, t: &Table, path: &str, allowed: &[&str]) {
        for key in t.keys() {
            if !allowed.contains(&key.as_str()) {
                let expected = allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    &join(path, key),
                    format!("unknown field `{key}`, expected one of {expected}"),
                );
            }
        }
    }

    fn missing(&mut self, path: &str, what: &str) {
        self.err(path, format!("missing required field (expected {what})"));
    }

    fn wrong(&mut self, path: &str, what: &str, found: &Value) {
        self.err(path, format!("expected {what}, found {}", found.type_str()));
    }

    fn get<'t>(&mut self, t: &'t Table, path: &str, key: &str, what: &str) -> Option<&'t Value> {
        let v = t.get(key);
        if v.is_none() {
            self.missing(&join(path, key), what);
        }
        v
    }

    fn as_table<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Table> {
        match v {
            Value::Table(t) => Some(t),
            other => {
                self.wrong(path, "a table", other);
                None
            }
        }
    }

    fn table<'t>(&mut self, t: &'t Table, path: &str, key: &str) -> Option<&'t Table> {
        let v = self.get(t, path, key, "a table")?;
        self.as_table(v, &join(path, key))
    }

    fn as_u64(&mut self, v: &Value, path: &str) -> Option<u64> {
        match v {
            Value::Integer(i) if *i >= 0 => Some(*i as u64),
            Value::Integer(i) => {
                self.err(path, format!("{i} is negative"));
                None
            }
            other => {
                self.wrong(path, "an integer", other);
                None
            }
        }
    }

    fn u64(&mut self, t: &Table, path: &str, key: &str) -> Option<u64> {
        let v = self.get(t, path, key, "an integer")?;
        self.as_u64(v, &join(path, key))
    }

    fn opt_u64(&mut self, t: &Table, path: &str, key: &str) -> Option<Option<u64>> {
        match t.get(key) {
            None => Some(None),
            Some(v) => self.as_u64(v, &join(path, key)).map(Some),
        }
    }

    fn bounded(&mut self, v: &Value, path: &str, max: u64, what: &str) -> Option<u64> {
        let n = self.as_u64(v, path)?;
        if n > max {
            self.err(path, format!("{n} does not fit {what} (max {max})"));
            return None;
        }
        Some(n)
    }

    fn string(&mut self, t: &Table, path: &str, key: &str) -> Option<String> {
        match self.get(t, path, key, "a string")? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(&join(path, key), "a string", other);
                None
            }
        }
    }

    fn opt_string(&mut self, t: &Table, path: &str, key: &str) -> Option<Option<String>> {
        match t.get(key) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(other) => {
                self.wrong(&join(path, key), "a string", other);
                None
            }
        }
    }

    fn opt_bool(&mut self, t: &Table, path: &str, key: &str) -> Option<bool> {
        match t.get(key) {
            None => Some(false),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.wrong(&join(path, key), "a boolean", other);
                None
            }
        }
    }

    /// An optional array of strings (empty when absent).
    fn strings(&mut self, t: &Table, path: &str, key: &str) -> Option<Vec<String>> {
        let Some(v) = t.get(key) else {
            return Some(Vec::new());
        };
        let p = join(path, key);
        let items = self.array(v, &p, "an array of strings")?;
        let mut out = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            match (item, &mut out) {
                (Value::String(s), Some(o)) => o.push(s.clone()),
                (Value::String(_), None) => {}
                (other, _) => {
                    self.wrong(&format!("{p}[{i}]"), "a string", other);
                    out = None;
                }
            }
        }
        out
    }

    fn array<'v>(&mut self, v: &'v Value, path: &str, what: &str) -> Option<&'v [Value]> {
        match v {
            Value::Array(a) => Some(a),
            other => {
                self.wrong(path, what, other);
                None
            }
        }
    }

    /// An array of integers, each at most `max`; every element is checked.
    fn ints(&mut self, v: &Value, path: &str, max: u64, what: &str) -> Option<Vec<u64>> {
        let items = self.array(v, path, "an array of integers")?;
        let mut out = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            match (
                self.bounded(item, &format!("{path}[{i}]"), max, what),
                &mut out,
            ) {
                (Some(n), Some(o)) => o.push(n),
                _ => out = None,
            }
        }
        out
    }

    /// An array of tables (`[[key]]` or an inline array); `f` parses each.
    fn tables<T>(
        &mut self,
        v: &Value,
        path: &str,
        mut f: impl FnMut(&mut Self, &Table, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.array(v, path, "an array of tables")?;
        let mut out = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let parsed = self.as_table(item, &p).and_then(|t| f(self, t, &p));
            match (parsed, &mut out) {
                (Some(x), Some(o)) => o.push(x),
                _ => out = None,
            }
        }
        out
    }

    fn range(&mut self, t: &Table, path: &str) -> Option<MemRange> {
        self.keys(t, path, &["base", "size"]);
        let base = self.u64(t, path, "base");
        let size = self.u64(t, path, "size");
        Some(MemRange {
            base: base?,
            size: size?,
        })
    }

    /// `[console]`: the UART's window and, optionally, its receive
    /// interrupt (an SPI INTID) for console input.
    fn console(&mut self, t: &Table) -> (Option<MemRange>, Option<Option<u32>>) {
        self.keys(t, "console", &["base", "size", "irq"]);
        let base = self.u64(t, "console", "base");
        let size = self.u64(t, "console", "size");
        let irq = match self.opt_u64(t, "console", "irq") {
            Some(Some(i)) if !(32..1020).contains(&i) => {
                self.err("console.irq", format!("{i} is not an SPI INTID (32..1019)"));
                None
            }
            other => other.map(|o| o.map(|i| i as u32)),
        };
        let range = match (base, size) {
            (Some(base), Some(size)) => Some(MemRange { base, size }),
            _ => None,
        };
        (range, irq)
    }

    fn board(&mut self, root: &Table) -> Option<BoardSpec> {
        match root.get("arch") {
            None => {}
            Some(Value::String(s)) if s == Arch::Aarch64.name() => {}
            Some(Value::String(s)) if s == Arch::X86_64.name() => return self.x86_board(root),
            Some(other) => {
                self.err(
                    "arch",
                    format!("expected \"aarch64\" or \"x86_64\", found {other}"),
                );
                return None;
            }
        }
        self.keys(
            root,
            "",
            &[
                "name",
                "arch",
                "cpu_mpidrs",
                "semihosting_exit",
                "memory",
                "hypervisor",
                "console",
                "gic",
                "devices",
                "bcm2711",
            ],
        );
        let name = self.string(root, "", "name");
        let cpu_mpidrs = self
            .get(root, "", "cpu_mpidrs", "an array of integers")
            .and_then(|v| self.ints(v, "cpu_mpidrs", u64::MAX, "an MPIDR"));
        let semihosting_exit = self.opt_bool(root, "", "semihosting_exit");
        let memory = self
            .get(root, "", "memory", "an array of tables")
            .and_then(|v| self.tables(v, "memory", |r, t, p| r.range(t, p)));
        let hypervisor = self
            .table(root, "", "hypervisor")
            .and_then(|t| self.range(t, "hypervisor"));
        let console_table = self.table(root, "", "console");
        let (console, console_irq) = match console_table {
            Some(t) => self.console(t),
            None => (None, None),
        };
        let gic = self.table(root, "", "gic").and_then(|t| self.gic(t));
        let devices = match root.get("devices") {
            None => Some(Vec::new()),
            Some(v) => self.tables(v, "devices", |r, t, p| r.device(t, p)),
        };
        let bcm2711 = match root.get("bcm2711") {
            None => Some(None),
            Some(_) => self
                .table(root, "", "bcm2711")
                .and_then(|t| self.bcm2711(t))
                .map(Some),
        };
        Some(BoardSpec {
            name: name?,
            arch: Arch::Aarch64,
            cpu_mpidrs: cpu_mpidrs?,
            memory: memory?,
            hypervisor: hypervisor?,
            console: console?,
            console_irq: console_irq?,
            gic: gic?,
            devices: devices?,
            semihosting_exit: semihosting_exit?,
            bcm2711: bcm2711?,
            ioapic: None,
        })
    }

    /// `[bcm2711]`: the PM watchdog and GPIO pages, the console's clock and
    /// baud rate.
    fn bcm2711(&mut self, t: &Table) -> Option<Bcm2711> {
        let s = "bcm2711";
        self.keys(t, s, &["pm_base", "gpio_base", "uart_clock_hz", "baud"]);
        let pm = self.u64(t, s, "pm_base");
        let gpio = self.u64(t, s, "gpio_base");
        let hz = |r: &mut Self, key: &str| {
            let v = r.u64(t, s, key)?;
            match u32::try_from(v) {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    r.err(&join(s, key), format!("{v} is not in 1..=4294967295"));
                    None
                }
            }
        };
        let clock = hz(self, "uart_clock_hz");
        let baud = hz(self, "baud");
        let page = |base| MemRange { base, size: 0x1000 };
        Some(Bcm2711 {
            pm: page(pm?),
            gpio: page(gpio?),
            uart_clock_hz: clock?,
            baud: baud?,
        })
    }

    fn gic(&mut self, t: &Table) -> Option<GicDesc> {
        self.keys(
            t,
            "gic",
            &[
                "version",
                "gicd_base",
                "gicr_base",
                "gicc_base",
                "gich_base",
                "gicv_base",
                "spare_spis",
            ],
        );
        let version = match self.u64(t, "gic", "version")? {
            2 => GicVersion::V2,
            3 => GicVersion::V3,
            n => {
                self.err(
                    "gic.version",
                    format!("{n} is not supported (expected 2 or 3)"),
                );
                return None;
            }
        };
        let gicd_base = self.u64(t, "gic", "gicd_base");
        let (want, other) = match version {
            GicVersion::V2 => ("gicc_base", "gicr_base"),
            GicVersion::V3 => ("gicr_base", "gicc_base"),
        };
        if t.contains_key(other) {
            self.err(
                &join("gic", other),
                format!(
                    "not used by a version {} GIC (give `{want}`)",
                    version_number(version)
                ),
            );
        }
        let second = self.u64(t, "gic", want);
        // The GICv2 virtualization frames; a GICv3 board has none.
        let (gich_base, gicv_base) = match version {
            GicVersion::V2 => (
                self.u64(t, "gic", "gich_base"),
                self.u64(t, "gic", "gicv_base"),
            ),
            GicVersion::V3 => {
                for key in ["gich_base", "gicv_base"] {
                    if t.contains_key(key) {
                        self.err(&join("gic", key), "not used by a version 3 GIC");
                    }
                }
                (Some(0), Some(0))
            }
        };
        let spare = match t.get("spare_spis") {
            None => Some((0, 0)),
            Some(v) => self
                .as_table(v, "gic.spare_spis")
                .and_then(|s| self.spare_spis(s)),
        };
        let (spare_spi_first, spare_spi_count) = spare?;
        Some(GicDesc {
            version,
            gicd_base: gicd_base?,
            gicr_or_gicc_base: second?,
            gich_base: gich_base?,
            gicv_base: gicv_base?,
            spare_spi_first,
            spare_spi_count,
        })
    }

    /// `gic.spare_spis = { first, count }`: INTIDs no device of the board
    /// drives, for inter-VM doorbells. Where they may lie is a value rule
    /// (`validate`); an empty range is a shape error here.
    fn spare_spis(&mut self, t: &Table) -> Option<(u32, u32)> {
        let p = "gic.spare_spis";
        self.keys(t, p, &["first", "count"]);
        let int = |r: &mut Self, key: &str| {
            let v = r.get(t, p, key, "an integer")?;
            r.bounded(v, &join(p, key), u64::from(u32::MAX), "a 32-bit integer")
                .map(|n| n as u32)
        };
        let first = int(self, "first");
        let count = int(self, "count");
        if count == Some(0) {
            self.err(
                "gic.spare_spis.count",
                "0 spare SPIs; give at least one, or leave `spare_spis` out",
            );
            return None;
        }
        Some((first?, count?))
    }

    fn device(&mut self, t: &Table, path: &str) -> Option<DeviceSpec> {
        self.keys(
            t,
            path,
            &[
                "name",
                "base",
                "size",
                "irqs",
                "dma",
                "dma_coherent",
                "compatible",
                "dt_stride",
                "irq_trigger",
            ],
        );
        let name = self.string(t, path, "name");
        let base = self.u64(t, path, "base");
        let size = self.u64(t, path, "size");
        let irqs = match t.get("irqs") {
            None => Some(Vec::new()),
            Some(v) => self.irqs(v, &join(path, "irqs")),
        };
        let dma = self.opt_bool(t, path, "dma");
        let dma_coherent = self.opt_bool(t, path, "dma_coherent");
        let compatible = self.strings(t, path, "compatible");
        let dt_stride = self.opt_u64(t, path, "dt_stride");
        let irq_trigger = match self.opt_string(t, path, "irq_trigger")? {
            None => Some(Trigger::Level),
            Some(s) if s == "level" => Some(Trigger::Level),
            Some(s) if s == "edge" => Some(Trigger::Edge),
            Some(s) => {
                self.err(
                    &join(path, "irq_trigger"),
                    format!("unknown trigger {s:?}, expected \"level\" or \"edge\""),
                );
                None
            }
        };
        Some(DeviceSpec {
            name: name?,
            mmio: MemRange {
                base: base?,
                size: size?,
            },
            irqs: irqs?,
            dma: dma?,
            dma_coherent: dma_coherent?,
            compatible: compatible?,
            dt_stride: dt_stride?,
            irq_trigger: irq_trigger?,
        })
    }

    fn irqs(&mut self, v: &Value, path: &str) -> Option<Vec<u32>> {
        let ints = self.ints(v, path, u64::from(u32::MAX), "a GIC INTID")?;
        // Cannot fail: bounded to u32::MAX above.
        Some(ints.into_iter().map(|n| n as u32).collect())
    }

    fn system(&mut self, root: &Table) -> Option<SystemSpec> {
        self.keys(root, "", &["board", "vm", "channel", "channel_pool"]);
        let board = self.string(root, "", "board");
        let vms = self
            .get(root, "", "vm", "an array of tables (`[[vm]]`)")
            .and_then(|v| self.array(v, "vm", "an array of tables (`[[vm]]`)"));
        let mut out = Some(Vec::new());
        for (i, v) in vms.unwrap_or_default().iter().enumerate() {
            let vm = self.vm(v, i);
            match (vm, &mut out) {
                (Some(vm), Some(o)) => o.push(vm),
                _ => out = None,
            }
        }
        self.scope.clear();
        let channels = self.channels(root);
        let pools = self.pools(root);
        Some(SystemSpec {
            board: board?,
            vms: out.filter(|_| vms.is_some())?,
            channels: channels?,
            pools: pools?,
        })
    }

    /// One `[[vm]]`. Errors are scoped by the VM's name when it can be read,
    /// by its index otherwise; field paths are full TOML paths (`vm.base.id`).
    fn vm(&mut self, v: &Value, index: usize) -> Option<VmSpec> {
        self.scope = format!("vm[{index}]");
        let t = self.as_table(v, "vm")?;
        if let Some(Value::String(name)) = t
            .get("base")
            .and_then(Value::as_table)
            .and_then(|b| b.get("name"))
        {
            self.scope = format!("vm {name:?}");
        }
        self.keys(t, "vm", &["base", "kernel", "memory_regions", "devices"]);

        let base = self.table(t, "vm", "base");
        let pmu = match base.and_then(|b| b.get("pmu")) {
            None => Some(false),
            Some(Value::Boolean(v)) => Some(*v),
            Some(other) => {
                self.wrong("vm.base.pmu", "a boolean", other);
                None
            }
        };
        let on_fault = match base {
            None => None,
            Some(b) => match self.opt_string(b, "vm.base", "on_fault") {
                Some(None) => Some(FaultPolicy::StopVm),
                Some(Some(s)) => match s.as_str() {
                    "stop-vm" => Some(FaultPolicy::StopVm),
                    "restart-vm" => Some(FaultPolicy::RestartVm),
                    _ => {
                        self.err(
                            "vm.base.on_fault",
                            format!("unknown policy {s:?}, expected \"stop-vm\" or \"restart-vm\""),
                        );
                        None
                    }
                },
                None => None,
            },
        };
        let (id, name, cpus, policy) = match base {
            Some(b) => {
                self.keys(
                    b,
                    "vm.base",
                    &[
                        "id",
                        "name",
                        "phys_cpu_ids",
                        "on_unhandled",
                        "on_fault",
                        "pmu",
                    ],
                );
                let id = self
                    .get(b, "vm.base", "id", "an integer")
                    .and_then(|v| self.bounded(v, "vm.base.id", u64::from(u16::MAX), "a VM id"));
                let name = self.string(b, "vm.base", "name");
                let cpus = self
                    .get(b, "vm.base", "phys_cpu_ids", "an array of integers")
                    .and_then(|v| self.ints(v, "vm.base.phys_cpu_ids", 4095, "a CPU index"));
                let policy = match self.opt_string(b, "vm.base", "on_unhandled") {
                    Some(None) => Some(UnhandledPolicy::InjectAbort),
                    Some(Some(s)) => match s.as_str() {
                        "inject-abort" => Some(UnhandledPolicy::InjectAbort),
                        "stop-vm" => Some(UnhandledPolicy::StopVm),
                        "restart-vm" => Some(UnhandledPolicy::RestartVm),
                        _ => {
                            self.err(
                                "vm.base.on_unhandled",
                                format!("unknown policy {s:?}, expected \"inject-abort\", \"stop-vm\" or \"restart-vm\""),
                            );
                            None
                        }
                    },
                    None => None,
                };
                (id, name, cpus, policy)
            }
            None => (None, None, None, None),
        };

        let kernel = self.table(t, "vm", "kernel").and_then(|k| self.kernel(k));

        let regions = self
            .get(
                t,
                "vm",
                "memory_regions",
                "an array of tables (`[[vm.memory_regions]]`)",
            )
            .and_then(|v| self.tables(v, "vm.memory_regions", |r, t, p| r.region(t, p)));

        let devices = match t.get("devices") {
            None => Some((Vec::new(), Vec::new(), None)),
            Some(v) => self.as_table(v, "vm.devices").and_then(|d| self.devices(d)),
        };

        let ports = match t.get("devices").and_then(Value::as_table) {
            None => Some(Default::default()),
            Some(d) => self.x86_ports(d),
        };

        let (emu_devices, passthrough_devices, vgic) = devices?;
        let (emu_ports, passthrough_ports) = ports?;
        Some(VmSpec {
            // Bounded to u16::MAX above.
            id: id? as u16,
            name: name?,
            phys_cpu_ids: cpus?.into_iter().map(|c| c as usize).collect(),
            on_unhandled: policy?,
            on_fault: on_fault?,
            kernel: kernel?,
            vgic,
            pmu: pmu?,
            memory_regions: regions?,
            emu_devices,
            passthrough_devices,
            emu_ports,
            passthrough_ports,
        })
    }

    /// `[vm.kernel]`: the fields allowed depend on `kind`.
    fn kernel(&mut self, k: &Table) -> Option<KernelSpec> {
        let p = "vm.kernel";
        let linux = match self.opt_string(k, p, "kind")? {
            None => false,
            Some(s) if s == "bare-metal" => false,
            Some(s) if s == "linux" => true,
            Some(s) => {
                self.err(
                    "vm.kernel.kind",
                    format!("unknown kernel kind {s:?}, expected \"bare-metal\" or \"linux\""),
                );
                return None;
            }
        };
        if linux {
            self.keys_for(
                k,
                p,
                &[
                    "kind",
                    "kernel_path",
                    "initramfs_path",
                    "bootargs",
                    "dtb_path",
                ],
                &[
                    (
                        "kernel_load_addr",
                        "the load address comes from the Image header for kind = \"linux\"",
                    ),
                    (
                        "entry_point",
                        "a Linux kernel is entered at its load address",
                    ),
                ],
            );
            let kernel_path = self.string(k, p, "kernel_path");
            let initramfs_path = self.opt_string(k, p, "initramfs_path");
            let bootargs = self.opt_string(k, p, "bootargs");
            let dtb_path = self.opt_string(k, p, "dtb_path");
            Some(KernelSpec::Linux(LinuxSpec {
                kernel_path: kernel_path?,
                initramfs_path: initramfs_path?,
                bootargs: bootargs?,
                dtb_path: dtb_path?,
            }))
        } else {
            let only_linux = "only for kind = \"linux\"";
            self.keys_for(
                k,
                p,
                &["kind", "kernel_path", "kernel_load_addr", "entry_point"],
                &[
                    ("initramfs_path", only_linux),
                    ("bootargs", only_linux),
                    ("dtb_path", only_linux),
                ],
            );
            let kernel_path = self.string(k, p, "kernel_path");
            let kernel_load_addr = self.u64(k, p, "kernel_load_addr");
            let entry_point = self.u64(k, p, "entry_point");
            Some(KernelSpec::BareMetal {
                kernel_path: kernel_path?,
                kernel_load_addr: kernel_load_addr?,
                entry_point: entry_point?,
            })
        }
    }

    /// Like [`Self::keys`], but fields of another variant get their own
    /// message instead of "unknown field".
    fn keys_for(&mut self, t: &Table, path: &str, allowed: &[&str], elsewhere: &[(&str, &str)]) {
        let mut rest = Table::new();
        for (key, v) in t {
            match elsewhere.iter().find(|(k, _)| k == key) {
                Some((_, why)) => self.err(&join(path, key), format!("not allowed: {why}")),
                None => {
                    rest.insert(key.clone(), v.clone());
                }
            }
        }
        self.keys(&rest, path, allowed);
    }

    fn region(&mut self, t: &Table, path: &str) -> Option<MemoryRegion> {
        self.keys(t, path, &["gpa", "hpa", "size", "kind", "identity"]);
        let gpa = self.u64(t, path, "gpa");
        let identity = self.opt_bool(t, path, "identity")?;
        // `identity = true` maps the region at gpa == hpa; `hpa` may then
        // be left out, and when given must equal `gpa`.
        let hpa = match (identity, t.get("hpa")) {
            (true, None) => gpa,
            (true, Some(v)) => {
                let hpa = self.as_u64(v, &join(path, "hpa"));
                if let (Some(h), Some(g)) = (hpa, gpa) {
                    if h != g {
                        self.err(
                            &join(path, "hpa"),
                            format!("{h:#x} differs from gpa {g:#x} but identity = true"),
                        );
                        return None;
                    }
                }
                hpa
            }
            (false, _) => self.u64(t, path, "hpa"),
        };
        let size = self.u64(t, path, "size");
        let kind = match self.opt_string(t, path, "kind")? {
            None => Some(RegionKind::Ram),
            Some(s) if s == "ram" => Some(RegionKind::Ram),
            Some(s) => {
                self.err(
                    &join(path, "kind"),
                    format!("unknown region kind {s:?}, expected \"ram\""),
                );
                None
            }
        };
        Some(MemoryRegion {
            gpa: gpa?,
            hpa: hpa?,
            size: size?,
            kind: kind?,
        })
    }

    #[allow(clippy::type_complexity)]
    fn devices(
        &mut self,
        d: &Table,
    ) -> Option<(Vec<EmuDevice>, Vec<PassthroughSpec>, Option<VgicLayout>)> {
        self.keys(
            d,
            "vm.devices",
            &[
                "emu_devices",
                "passthrough_devices",
                "vgic",
                "emu_ports",
                "passthrough_ports",
            ],
        );
        let vgic = match d.get("vgic") {
            None => Some(None),
            Some(v) => self.as_table(v, "vm.devices.vgic").and_then(|t| {
                let p = "vm.devices.vgic";
                self.keys(t, p, &["gicd_gpa", "gicr_gpa"]);
                let gicd_gpa = self.u64(t, p, "gicd_gpa");
                let gicr_gpa = self.u64(t, p, "gicr_gpa");
                Some(Some(VgicLayout {
                    gicd_gpa: gicd_gpa?,
                    gicr_gpa: gicr_gpa?,
                }))
            }),
        };
        let emu = match d.get("emu_devices") {
            None => Some(Vec::new()),
            Some(v) => self.tables(v, "vm.devices.emu_devices", |r, t, p| r.emu(t, p)),
        };
        let pt = match d.get("passthrough_devices") {
            None => Some(Vec::new()),
            Some(v) => self.tables(v, "vm.devices.passthrough_devices", |r, t, p| {
                r.passthrough(t, p)
            }),
        };
        Some((emu?, pt?, vgic?))
    }

    fn emu(&mut self, t: &Table, path: &str) -> Option<EmuDevice> {
        self.keys(t, path, &["kind", "gpa", "size", "irq"]);
        let irq = match t.get("irq") {
            None => Some(None),
            Some(v) => self
                .bounded(v, &join(path, "irq"), u64::from(u32::MAX), "a GIC INTID")
                // Bounded to u32::MAX.
                .map(|n| Some(n as u32)),
        };
        let kind = match self.string(t, path, "kind")?.as_str() {
            "pl011" => Some(EmuDeviceKind::Pl011),
            "ivc-pci" => Some(EmuDeviceKind::IvcPci),
            other => {
                self.err(
                    &join(path, "kind"),
                    format!("unknown emulated device {other:?}, expected \"pl011\" or \"ivc-pci\""),
                );
                None
            }
        };
        let gpa = self.u64(t, path, "gpa");
        let size = self.u64(t, path, "size");
        Some(EmuDevice {
            kind: kind?,
            gpa: gpa?,
            size: size?,
            irq: irq?,
        })
    }

    fn passthrough(&mut self, t: &Table, path: &str) -> Option<PassthroughSpec> {
        self.keys(t, path, &["name", "gpa", "irqs"]);
        let name = self.string(t, path, "name");
        let gpa = self.opt_u64(t, path, "gpa");
        let irqs = match t.get("irqs") {
            None => Some(None),
            Some(v) => self.irqs(v, &join(path, "irqs")).map(Some),
        };
        Some(PassthroughSpec {
            name: name?,
            gpa: gpa?,
            irqs: irqs?,
        })
    }
}

fn version_number(v: GicVersion) -> u8 {
    match v {
        GicVersion::V2 => 2,
        GicVersion::V3 => 3,
    }
}
