//! Parsing of what x86_64 adds: the board file of an `arch = "x86_64"`
//! board (`apic_ids`, a console at an I/O port, an `[ioapic]`, no GIC) and
//! the port devices of a VM (`devices.emu_ports`,
//! `devices.passthrough_ports` with their `irqs`).

use toml::{Table, Value};

use super::super::model::{BoardSpec, DeviceSpec, PassthroughPortsSpec};
use super::Reader;
use crate::{Arch, EmuPort, EmuPortKind, GicDesc, GicVersion, IoApicDesc, MemRange, PortRange};

/// Largest I/O port.
const PORT_MAX: u64 = 0xffff;
/// Most inputs an I/O APIC has (its version register's 8-bit maximum
/// redirection entry, plus one).
const IOAPIC_PINS_MAX: u64 = 256;

impl Reader {
    /// An `arch = "x86_64"` board file.
    pub(super) fn x86_board(&mut self, root: &Table) -> Option<BoardSpec> {
        self.keys(
            root,
            "",
            &[
                "name",
                "arch",
                "apic_ids",
                "memory",
                "hypervisor",
                "console",
                "ioapic",
                "devices",
            ],
        );
        let name = self.string(root, "", "name");
        let apic_ids = self
            .get(root, "", "apic_ids", "an array of integers")
            .and_then(|v| self.ints(v, "apic_ids", u64::from(u32::MAX), "a local APIC id"));
        let memory = self
            .get(root, "", "memory", "an array of tables")
            .and_then(|v| self.tables(v, "memory", |r, t, p| r.range(t, p)));
        let hypervisor = self
            .table(root, "", "hypervisor")
            .and_then(|t| self.range(t, "hypervisor"));
        let console = self.table(root, "", "console").and_then(|t| {
            self.keys(t, "console", &["port", "irq"]);
            let irq = match t.get("irq") {
                None => Some(None),
                Some(v) => self
                    .bounded(v, "console.irq", IOAPIC_PINS_MAX - 1, "a GSI")
                    .map(|i| Some(i as u32)),
            };
            let v = self.get(t, "console", "port", "an I/O port")?;
            let port = self.bounded(v, "console.port", PORT_MAX, "an I/O port")?;
            let range = MemRange {
                base: port,
                size: u64::from(EmuPortKind::Uart16550.ports()),
            };
            Some((range, irq?))
        });
        let ioapic = match root.get("ioapic") {
            None => Some(None),
            Some(_) => self.table(root, "", "ioapic").and_then(|t| {
                self.keys(t, "ioapic", &["base", "pins"]);
                let base = self.u64(t, "ioapic", "base");
                let pins = self
                    .get(t, "ioapic", "pins", "a number of inputs")
                    .and_then(|v| {
                        self.bounded(v, "ioapic.pins", IOAPIC_PINS_MAX, "a number of inputs")
                    });
                Some(Some(IoApicDesc {
                    base: base?,
                    // Bounded to 256 above.
                    pins: pins? as u32,
                }))
            }),
        };
        let devices: Option<Vec<DeviceSpec>> = match root.get("devices") {
            None => Some(Vec::new()),
            Some(v) => self.tables(v, "devices", |r, t, p| r.device(t, p)),
        };
        let (console, console_irq) = console?;
        Some(BoardSpec {
            name: name?,
            arch: Arch::X86_64,
            cpu_mpidrs: apic_ids?,
            memory: memory?,
            hypervisor: hypervisor?,
            console,
            // The console's interrupt line: no VM may have it (console
            // input is polled on x86 today).
            console_irq,
            // x86 boards have no GIC; the field stays zero and unused.
            gic: GicDesc {
                version: GicVersion::V3,
                gicd_base: 0,
                gicr_or_gicc_base: 0,
                gich_base: 0,
                gicv_base: 0,
                spare_spi_first: 0,
                spare_spi_count: 0,
            },
            devices: devices?,
            semihosting_exit: false,
            bcm2711: None,
            ioapic: ioapic?,
        })
    }

    /// The port devices of a VM's `[vm.devices]` table.
    pub(super) fn x86_ports(
        &mut self,
        d: &Table,
    ) -> Option<(Vec<EmuPort>, Vec<PassthroughPortsSpec>)> {
        let emu = match d.get("emu_ports") {
            None => Some(Vec::new()),
            Some(v) => self.emu_ports(v, "vm.devices.emu_ports"),
        };
        let passthrough = match d.get("passthrough_ports") {
            None => Some(Vec::new()),
            Some(v) => self.port_ranges(v, "vm.devices.passthrough_ports"),
        };
        Some((emu?, passthrough?))
    }

    /// `devices.emu_ports`: `[{ kind = "uart16550", port = 0x3f8 }]`.
    fn emu_ports(&mut self, v: &Value, path: &str) -> Option<Vec<EmuPort>> {
        self.tables(v, path, |r, t, p| {
            r.keys(t, p, &["kind", "port"]);
            let kind = match r.string(t, p, "kind")?.as_str() {
                "uart16550" => Some(EmuPortKind::Uart16550),
                other => {
                    r.err(
                        &format!("{p}.kind"),
                        format!("unknown emulated port device {other:?}, expected \"uart16550\""),
                    );
                    None
                }
            };
            let port = r
                .get(t, p, "port", "an I/O port")
                .and_then(|v| r.bounded(v, &format!("{p}.port"), PORT_MAX, "an I/O port"));
            Some(EmuPort {
                kind: kind?,
                // Bounded to 0xffff above.
                port: port? as u16,
            })
        })
    }

    /// `devices.passthrough_ports`: `[{ base = 0x2f8, size = 8, irqs = [3] }]`
    /// (`irqs`, the GSIs that come with the ports, may be left out).
    fn port_ranges(&mut self, v: &Value, path: &str) -> Option<Vec<PassthroughPortsSpec>> {
        self.tables(v, path, |r, t, p| {
            r.keys(t, p, &["base", "size", "irqs"]);
            let irqs = match t.get("irqs") {
                None => Some(Vec::new()),
                Some(v) => r
                    .ints(v, &format!("{p}.irqs"), IOAPIC_PINS_MAX - 1, "a GSI")
                    .map(|i| i.into_iter().map(|g| g as u32).collect()),
            };
            let base = r
                .get(t, p, "base", "an I/O port")
                .and_then(|v| r.bounded(v, &format!("{p}.base"), PORT_MAX, "an I/O port"));
            let size = r
                .get(t, p, "size", "a port count")
                .and_then(|v| r.bounded(v, &format!("{p}.size"), PORT_MAX + 1, "a port count"));
            let (base, size, irqs) = (base?, size?, irqs?);
            if size == 0 || base + size > PORT_MAX + 1 {
                r.err(
                    p,
                    format!("ports {base:#x}+{size:#x} are not a range inside 0x0..=0xffff"),
                );
                return None;
            }
            // Both bounded above (size <= 0x10000 - base, so it fits u16
            // unless base is 0 and size 0x10000, kept as the whole space).
            Some(PassthroughPortsSpec {
                range: PortRange {
                    base: base as u16,
                    size: size.min(u64::from(u16::MAX)) as u16,
                },
                irqs,
            })
        })
    }
}
