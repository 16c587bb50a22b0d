//! A virtual I/O APIC, one per VM: the register model a guest programs at
//! 0xfec0_0000 (82093AA datasheet; IOREGSEL at +0x00, IOWIN at +0x10).
//! Only the redirection entries of the VM's own interrupt lines (GSIs from
//! its config) are programmable; every other entry, and every other
//! register but ID, version and arbitration, reads as zero and ignores
//! writes. Pure: the back-end ([`super::ioapic`], `vmexit.rs`) mirrors an
//! entry onto the physical I/O APIC when [`VIoApic::write`] says it
//! changed, asks [`VIoApic::assert`] where a physical interrupt goes, and
//! hands guest EOIs of level-triggered vectors to [`VIoApic::eoi`].

use alloc::vec::Vec;

/// Guest-physical base of the I/O APIC (where PCs have it).
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Size of its MMIO window.
pub const IOAPIC_SIZE: u64 = 0x1000;

/// MMIO offsets: register select, register window.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// Register indexes: ID, version, arbitration id, first redirection entry.
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARB: u32 = 0x02;
const REG_REDIR: u32 = 0x10;
/// Version register: an 82093AA (0x11) with `pins - 1` in bits 23:16.
const VERSION: u32 = 0x11;

/// Redirection entry bits (low word, and the destination in the high
/// word's bits 31:24).
const VECTOR: u64 = 0xff;
const DELIVERY_MODE: u64 = 7 << 8;
const DEST_LOGICAL: u64 = 1 << 11;
const ACTIVE_LOW: u64 = 1 << 13;
const REMOTE_IRR: u64 = 1 << 14;
const LEVEL: u64 = 1 << 15;
const MASKED: u64 = 1 << 16;
const DEST_SHIFT: u32 = 56;
/// What a guest may write: vector, delivery mode, destination mode,
/// polarity, trigger mode, mask, destination (delivery status and remote
/// IRR are read-only).
const WRITABLE: u64 =
    VECTOR | DELIVERY_MODE | DEST_LOGICAL | ACTIVE_LOW | LEVEL | MASKED | 0xff << DEST_SHIFT;

/// An access the model refuses (the guest gets its VM's policy): a width
/// or alignment the I/O APIC does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// How the guest routes one of its lines, as the physical entry must
/// mirror it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The guest's vector.
    pub vector: u8,
    /// The vCPU it goes to (its APIC id; the caller falls back to vCPU 0
    /// when the VM has no such vCPU).
    pub vcpu: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
    /// The physical entry must be masked now: the guest masked it, or a
    /// level interrupt waits for the guest's EOI (remote IRR), or its
    /// delivery mode is one Tessera does not deliver (SMI, NMI, INIT,
    /// ExtINT).
    pub masked: bool,
}

/// One of the VM's lines: its GSI and redirection entry.
#[derive(Debug, Clone, Copy)]
struct Line {
    gsi: u32,
    entry: u64,
}

/// The register state of one VM's I/O APIC.
#[derive(Debug, Clone)]
pub struct VIoApic {
    id: u32,
    select: u32,
    pins: u32,
    lines: Vec<Line>,
}

impl VIoApic {
    /// An I/O APIC with `pins` inputs of which the VM owns `gsis`, after
    /// reset: every entry masked.
    pub fn new(pins: u32, gsis: &[u32]) -> Self {
        Self {
            id: 0,
            select: 0,
            pins,
            lines: gsis
                .iter()
                .filter(|&&g| g < pins)
                .map(|&gsi| Line { gsi, entry: MASKED })
                .collect(),
        }
    }

    /// Back to the reset state (a VM reset).
    pub fn reset(&mut self) {
        self.id = 0;
        self.select = 0;
        self.lines.iter_mut().for_each(|l| l.entry = MASKED);
    }

    /// The GSIs the VM owns.
    pub fn gsis(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines.iter().map(|l| l.gsi)
    }

    fn line(&self, gsi: u32) -> Option<&Line> {
        self.lines.iter().find(|l| l.gsi == gsi)
    }

    fn line_mut(&mut self, gsi: u32) -> Option<&mut Line> {
        self.lines.iter_mut().find(|l| l.gsi == gsi)
    }

    /// The redirection entry and which half a register index selects.
    fn entry_of(&self, index: u32) -> Option<(u32, bool)> {
        let n = index.checked_sub(REG_REDIR)?;
        (n / 2 < self.pins).then_some((n / 2, n % 2 == 1))
    }

    fn read_register(&self, index: u32) -> u32 {
        match index {
            REG_ID | REG_ARB => self.id << 24,
            REG_VERSION => VERSION | (self.pins.saturating_sub(1) & 0xff) << 16,
            i => match self
                .entry_of(i)
                .and_then(|(g, high)| Some((self.line(g)?, high)))
            {
                Some((l, true)) => (l.entry >> 32) as u32,
                Some((l, false)) => l.entry as u32,
                None => 0,
            },
        }
    }

    /// A read of `width` bytes at `offset` in the MMIO window: IOREGSEL
    /// reads back, IOWIN reads the selected register; 1, 2 or 4 bytes
    /// inside one 32-bit register. Other offsets read 0.
    pub fn read(&self, offset: u64, width: u64) -> Result<u32, Refused> {
        let within = offset & 3;
        if !matches!(width, 1 | 2 | 4) || within + width > 4 || offset >= IOAPIC_SIZE {
            return Err(Refused);
        }
        let v = match offset & !3 {
            IOREGSEL => self.select,
            IOWIN => self.read_register(self.select),
            _ => 0,
        };
        let v = v >> (within * 8);
        Ok(if width == 4 {
            v
        } else {
            v & ((1 << (width * 8)) - 1)
        })
    }

    /// A write of `width` bytes of `value` at `offset`: IOREGSEL takes the
    /// low byte (any width at offset 0), IOWIN whole 32-bit registers.
    /// Returns the GSI whose entry changed, for the caller to mirror onto
    /// the physical I/O APIC ([`VIoApic::route`]).
    pub fn write(&mut self, offset: u64, width: u64, value: u32) -> Result<Option<u32>, Refused> {
        if offset >= IOAPIC_SIZE || !matches!(width, 1 | 2 | 4) || (offset & 3) + width > 4 {
            return Err(Refused);
        }
        match offset {
            IOREGSEL => self.select = value & 0xff,
            IOWIN if width == 4 => return Ok(self.write_register(self.select, value)),
            IOWIN => return Err(Refused),
            _ => {}
        }
        Ok(None)
    }

    fn write_register(&mut self, index: u32, value: u32) -> Option<u32> {
        if index == REG_ID {
            self.id = value >> 24 & 0xf;
            return None;
        }
        let (gsi, high) = self.entry_of(index)?;
        let line = self.line_mut(gsi)?;
        let (shift, half) = if high {
            (32, 0xffff_ffff << 32)
        } else {
            (0, 0xffff_ffff)
        };
        let new = (line.entry & !(half & WRITABLE)) | (u64::from(value) << shift & half & WRITABLE);
        let old = line.entry;
        // Edge-triggered entries have no remote IRR.
        line.entry = if new & LEVEL == 0 {
            new & !REMOTE_IRR
        } else {
            new
        };
        (line.entry != old).then_some(gsi)
    }

    /// How line `gsi` is routed now (`None`: not one of the VM's lines).
    pub fn route(&self, gsi: u32) -> Option<Route> {
        let e = self.line(gsi)?.entry;
        let deliverable = matches!((e & DELIVERY_MODE) >> 8, 0 | 1);
        Some(Route {
            vector: (e & VECTOR) as u8,
            vcpu: destination(e),
            level: e & LEVEL != 0,
            active_low: e & ACTIVE_LOW != 0,
            masked: e & MASKED != 0 || e & REMOTE_IRR != 0 || !deliverable,
        })
    }

    /// Line `gsi` was raised (its physical interrupt arrived): where it
    /// goes, if the entry delivers it. A level-triggered line sets remote
    /// IRR and is not delivered again until the guest's EOI of its vector
    /// ([`VIoApic::eoi`]); the caller keeps the physical entry masked till
    /// then.
    pub fn assert(&mut self, gsi: u32) -> Option<Route> {
        let route = self.route(gsi)?;
        if route.masked {
            return None;
        }
        if route.level {
            if let Some(l) = self.line_mut(gsi) {
                l.entry |= REMOTE_IRR;
            }
        }
        Some(route)
    }

    /// The guest ended level-triggered `vector` at its local APIC (the EOI
    /// message an APIC broadcasts): remote IRR clears on the level lines
    /// with that vector; `f` gets each such GSI, to unmask its physical
    /// entry if the guest's entry is unmasked.
    pub fn eoi(&mut self, vector: u8, mut f: impl FnMut(u32, Route)) {
        for i in 0..self.lines.len() {
            let Some(l) = self.lines.get_mut(i) else {
                continue;
            };
            if l.entry & REMOTE_IRR != 0 && l.entry & VECTOR == u64::from(vector) {
                l.entry &= !REMOTE_IRR;
                let gsi = l.gsi;
                if let Some(r) = self.route(gsi) {
                    f(gsi, r);
                }
            }
        }
    }
}

/// The vCPU an entry names: the APIC id in physical destination mode; in
/// logical (flat) mode the lowest set bit of the destination, Tessera's
/// guests' logical ids being one bit per vCPU.
fn destination(entry: u64) -> u32 {
    let dest = (entry >> DEST_SHIFT) as u32 & 0xff;
    if entry & DEST_LOGICAL == 0 {
        dest
    } else if dest == 0 {
        0
    } else {
        dest.trailing_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes register `index` through IOREGSEL/IOWIN.
    fn set(a: &mut VIoApic, index: u32, value: u32) -> Option<u32> {
        a.write(IOREGSEL, 4, index).expect("select");
        a.write(IOWIN, 4, value).expect("window")
    }

    fn get(a: &mut VIoApic, index: u32) -> u32 {
        a.write(IOREGSEL, 4, index).expect("select");
        a.read(IOWIN, 4).expect("window")
    }

    #[test]
    fn id_version_and_reset_state() {
        let mut a = VIoApic::new(24, &[3, 9]);
        assert_eq!(get(&mut a, REG_VERSION), 0x0017_0011, "24 entries, 82093AA");
        assert_eq!(get(&mut a, REG_ID), 0);
        set(&mut a, REG_ID, 0x0500_0000);
        assert_eq!(get(&mut a, REG_ID), 0x0500_0000);
        assert_eq!(get(&mut a, REG_ARB), 0x0500_0000);
        // The VM's entries start masked; IOREGSEL reads back.
        assert_eq!(get(&mut a, 0x10 + 2 * 3), 0x1_0000);
        assert_eq!(a.read(IOREGSEL, 4), Ok(0x16));
        assert_eq!(a.gsis().collect::<Vec<_>>(), vec![3, 9]);
        // GSIs beyond the pins are not lines.
        assert_eq!(VIoApic::new(4, &[3, 9]).gsis().count(), 1);
    }

    #[test]
    fn only_the_vms_own_entries_are_programmable() {
        let mut a = VIoApic::new(24, &[3]);
        // GSI 4 is not the VM's: reads 0, ignores writes, changes nothing.
        assert_eq!(set(&mut a, 0x10 + 2 * 4, 0x41), None);
        assert_eq!(get(&mut a, 0x10 + 2 * 4), 0);
        assert_eq!(get(&mut a, 0x11 + 2 * 4), 0);
        // Beyond the last entry and other registers: 0.
        assert_eq!(get(&mut a, 0x10 + 2 * 24), 0);
        assert_eq!(get(&mut a, 0x03), 0);
        assert_eq!(set(&mut a, 0x03, 0xffff_ffff), None);
        // Its own: vector, trigger, polarity, mask, destination.
        assert_eq!(set(&mut a, 0x11 + 2 * 3, 0x0100_0000), Some(3));
        assert_eq!(set(&mut a, 0x10 + 2 * 3, 0xa041), Some(3));
        assert_eq!(get(&mut a, 0x10 + 2 * 3), 0xa041);
        assert_eq!(get(&mut a, 0x11 + 2 * 3), 0x0100_0000);
        assert_eq!(
            a.route(3),
            Some(Route {
                vector: 0x41,
                vcpu: 1,
                level: true,
                active_low: true,
                masked: false
            })
        );
        // Writing the same value again changes nothing.
        assert_eq!(set(&mut a, 0x10 + 2 * 3, 0xa041), None);
        // Delivery status and remote IRR are read-only.
        assert_eq!(set(&mut a, 0x10 + 2 * 3, 0xa041 | 1 << 12 | 1 << 14), None);
        assert_eq!(a.route(4), None);
    }

    #[test]
    fn mmio_widths_and_offsets() {
        let mut a = VIoApic::new(24, &[3]);
        set(&mut a, 0x10 + 2 * 3, 0x1_8041);
        a.write(IOREGSEL, 1, 0x16).expect("byte select");
        assert_eq!(a.read(IOWIN, 1), Ok(0x41));
        assert_eq!(a.read(IOWIN + 1, 1), Ok(0x80));
        assert_eq!(a.read(IOWIN + 2, 2), Ok(0x1));
        assert_eq!(a.read(IOWIN + 2, 4), Err(Refused), "crosses the register");
        assert_eq!(a.read(IOWIN, 8), Err(Refused));
        assert_eq!(a.write(IOWIN, 2, 0), Err(Refused), "IOWIN takes 32 bits");
        assert_eq!(a.read(0x20, 4), Ok(0), "other offsets read 0");
        assert_eq!(a.write(0x40, 4, 5), Ok(None), "and ignore writes");
        assert_eq!(a.read(IOAPIC_SIZE, 4), Err(Refused));
    }

    #[test]
    fn edge_lines_deliver_each_time_unless_masked() {
        let mut a = VIoApic::new(24, &[3]);
        assert_eq!(a.assert(3), None, "masked after reset");
        set(&mut a, 0x10 + 2 * 3, 0x40);
        for _ in 0..3 {
            assert_eq!(a.assert(3).map(|r| (r.vector, r.vcpu)), Some((0x40, 0)));
        }
        assert_eq!(a.assert(4), None, "not the VM's line");
        set(&mut a, 0x10 + 2 * 3, 0x1_0040);
        assert_eq!(a.assert(3), None);
        // NMI/INIT/ExtINT delivery modes are not delivered.
        set(&mut a, 0x10 + 2 * 3, 0x740);
        assert_eq!(a.assert(3), None);
        assert!(a.route(3).is_some_and(|r| r.masked));
    }

    #[test]
    fn level_lines_wait_for_the_eoi_of_their_vector() {
        let mut a = VIoApic::new(24, &[3, 5]);
        set(&mut a, 0x10 + 2 * 3, 0x8050);
        set(&mut a, 0x10 + 2 * 5, 0x8051);
        let r = a.assert(3).expect("delivered");
        assert!(r.level);
        // Remote IRR: held (the physical entry stays masked) and visible.
        assert_eq!(get(&mut a, 0x10 + 2 * 3), 0xc050);
        assert!(a.route(3).is_some_and(|r| r.masked));
        assert_eq!(a.assert(3), None);
        // An EOI of another vector does nothing.
        let mut unmasked = Vec::new();
        a.eoi(0x51, |g, r| unmasked.push((g, r.masked)));
        assert!(unmasked.is_empty());
        a.eoi(0x50, |g, r| unmasked.push((g, r.masked)));
        assert_eq!(unmasked, vec![(3, false)]);
        assert_eq!(get(&mut a, 0x10 + 2 * 3), 0x8050);
        assert!(a.assert(3).is_some(), "delivered again after the EOI");
        // Switching to edge drops remote IRR.
        set(&mut a, 0x10 + 2 * 3, 0x0050);
        assert_eq!(get(&mut a, 0x10 + 2 * 3), 0x0050);
        // A reset masks everything again.
        a.reset();
        assert_eq!(a.assert(5), None);
        assert_eq!(get(&mut a, 0x10 + 2 * 5), 0x1_0000);
    }

    #[test]
    fn destinations_physical_and_logical() {
        let mut a = VIoApic::new(24, &[3]);
        set(&mut a, 0x11 + 2 * 3, 0x0200_0000);
        set(&mut a, 0x10 + 2 * 3, 0x40);
        assert_eq!(a.route(3).map(|r| r.vcpu), Some(2));
        set(&mut a, 0x11 + 2 * 3, 0x0600_0000);
        set(&mut a, 0x10 + 2 * 3, 0x840);
        assert_eq!(a.route(3).map(|r| r.vcpu), Some(1), "lowest logical bit");
        set(&mut a, 0x11 + 2 * 3, 0);
        assert_eq!(a.route(3).map(|r| r.vcpu), Some(0));
    }
}
