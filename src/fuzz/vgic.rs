//! The virtual GICv3 (distributor and redistributors) under the generic
//! device driver of [`super::devices`]: `device_vgic_gicd` and
//! `device_vgic_gicr`. Each case builds a VM of 1-4 vCPUs owning a few
//! SPIs (some forwarded physical interrupts) and checks partitioning after
//! every access: the hardware is only ever asked about the VM's own
//! physical SPIs and CPUs, delivered interrupts are owned and enabled,
//! registers of interrupts the VM does not own read as zero, and a reset
//! leaves nothing enabled or pending and every physical SPI quiesced.

use super::devices::{fuzz_device, Access, Model};
use super::Leaked;
use crate::devices::vgic::gicv3::{Distributor, Redistributors, GICD_SIZE, GICR_FRAME_SIZE};
use crate::devices::vgic::{Batch, Deliverable, OwnedSpi, SpiSource, Vgic, VgicHw, PRIVATE_INTIDS};
use crate::devices::AccessError;
use crate::exit::AccessWidth;
use alloc::vec::Vec;
use std::sync::Mutex;

/// What the model asked of the hardware.
#[derive(Debug, Clone)]
enum Call {
    Enable(u32),
    Route(u32, usize),
    Edge(u32),
    Quiesce(u32),
    Kick(usize),
    Deliver(usize, Vec<Deliverable>),
}

/// A hardware back-end that records every request; "this core" is the
/// physical CPU of vCPU 0, and a local delivery takes up to four
/// interrupts, as four list registers would.
struct Recorder {
    this_cpu: usize,
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn log(&self, call: Call) {
        self.calls.lock().expect("not poisoned").push(call);
    }
}

impl VgicHw for Recorder {
    fn is_this_cpu(&self, phys_cpu: usize) -> bool {
        phys_cpu == self.this_cpu
    }
    fn deliver_local(&self, vgic: &Vgic, vcpu: usize) {
        let mut lrs = Batch::new();
        vgic.take_deliverable(vcpu, 4, &mut lrs);
        self.log(Call::Deliver(vcpu, lrs.to_vec()));
    }
    fn kick(&self, phys_cpu: usize) {
        self.log(Call::Kick(phys_cpu));
    }
    fn set_physical_enabled(&self, intid: u32, _: bool) {
        self.log(Call::Enable(intid));
    }
    fn route_physical(&self, intid: u32, phys_cpu: usize) {
        self.log(Call::Route(intid, phys_cpu));
    }
    fn set_physical_edge(&self, intid: u32, _: bool) {
        self.log(Call::Edge(intid));
    }
    fn quiesce_physical(&self, intid: u32) {
        self.log(Call::Quiesce(intid));
    }
}

/// One VM's vGIC and what the checks need to know of its configuration.
struct Case<D> {
    front: D,
    vgic: Leaked<Vgic>,
    hw: Leaked<Recorder>,
    phys: Vec<usize>,
    spis: Vec<OwnedSpi>,
    typer: Option<u64>,
}

impl<D> Case<D> {
    /// vCPUs on distinct physical CPUs, a few SPIs below 96 (and now and
    /// then the last one, 1019), each emulated, passthrough or carried on a
    /// spare physical line (900 and up).
    fn new(config: u64, front: impl FnOnce(&'static Vgic) -> D) -> Self {
        let mut x = config | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 1 + (next() % 4) as usize;
        let first = (next() % 5) as usize;
        let phys: Vec<usize> = (first..first + n).collect();
        let mut spis: Vec<OwnedSpi> = Vec::new();
        for _ in 0..next() % 6 {
            let intid = if next() % 8 == 0 {
                1019
            } else {
                32 + (next() % 64) as u32
            };
            if !spis.iter().any(|s| s.intid == intid) {
                let source = match next() % 3 {
                    0 => SpiSource::Emulated,
                    1 => SpiSource::Passthrough,
                    _ => SpiSource::SpareLine(900 + spis.len() as u32),
                };
                spis.push(OwnedSpi { intid, source });
            }
        }
        let hw = Leaked::new(Recorder {
            this_cpu: phys[0],
            calls: Mutex::new(Vec::new()),
        });
        let vgic = Leaked::new(Vgic::new(&phys, &spis, hw.get()));
        Self {
            front: front(vgic.get()),
            vgic,
            hw,
            phys,
            spis,
            typer: None,
        }
    }

    /// Whether physical SPI `line` is one of the VM's (a passthrough
    /// SPI's or a spare line).
    fn is_hw_spi(&self, line: u32) -> bool {
        self.spis.iter().any(|s| match s.source {
            SpiSource::Emulated => false,
            SpiSource::Passthrough => s.intid == line,
            SpiSource::SpareLine(l) => l == line,
        })
    }

    /// Everything asked of the hardware since the last check concerns the
    /// VM's own physical SPIs and CPUs; every delivered interrupt is owned
    /// and enabled, forwarded ones flagged as such.
    fn check_calls(&self) -> Result<(), String> {
        let v = self.vgic.get();
        let calls = core::mem::take(&mut *self.hw.get().calls.lock().expect("not poisoned"));
        for call in calls {
            let ok = match &call {
                Call::Enable(i) | Call::Edge(i) | Call::Quiesce(i) => self.is_hw_spi(*i),
                Call::Route(i, cpu) => self.is_hw_spi(*i) && self.phys.contains(cpu),
                Call::Kick(cpu) => self.phys.contains(cpu),
                Call::Deliver(vcpu, ds) => {
                    *vcpu < self.phys.len()
                        && ds.iter().all(|d| {
                            v.owns(d.intid)
                                && v.is_enabled(*vcpu, d.intid)
                                && (!d.hw || v.is_hw(d.intid) && v.line(d.intid) == d.line)
                        })
                }
            };
            if !ok {
                return Err(format!(
                    "hardware asked {call:x?} (VM owns {:?} on CPUs {:?})",
                    self.spis, self.phys
                ));
            }
        }
        Ok(())
    }

    /// Whole-state sweep: an interrupt the VM does not own is never
    /// enabled, pending or prioritised; owned SPIs route to its vCPUs.
    fn check_state(&self) -> Result<(), String> {
        let v = self.vgic.get();
        for intid in 0..1024 + 32 {
            if v.owns(intid) {
                if intid >= PRIVATE_INTIDS && v.target_of(intid) >= self.phys.len() {
                    return Err(format!("SPI {intid} routed to vCPU {}", v.target_of(intid)));
                }
                continue;
            }
            for vcpu in 0..self.phys.len() {
                if v.is_enabled(vcpu, intid)
                    || v.is_pending(vcpu, intid)
                    || v.priority(vcpu, intid) != 0
                {
                    return Err(format!("unowned INTID {intid} has state for vCPU {vcpu}"));
                }
            }
        }
        Ok(())
    }

    /// The VM reset: nothing enabled or pending, priorities and routes
    /// back to 0, group 1 off, every forwarded SPI quiesced.
    fn reset(&mut self) -> Result<(), String> {
        let v = self.vgic.get();
        v.reset();
        let quiesced: Vec<u32> = self
            .hw
            .get()
            .calls
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|c| match c {
                Call::Quiesce(i) => Some(*i),
                _ => None,
            })
            .collect();
        let line = |s: &OwnedSpi| match s.source {
            SpiSource::Emulated => None,
            SpiSource::Passthrough => Some(s.intid),
            SpiSource::SpareLine(l) => Some(l),
        };
        if let Some(s) = self
            .spis
            .iter()
            .find(|s| line(s).is_some_and(|l| !quiesced.contains(&l)))
        {
            return Err(format!("forwarded SPI {} not quiesced", s.intid));
        }
        self.check_calls()?;
        if v.group1_enabled() {
            return Err("group 1 still enabled".into());
        }
        for intid in 0..1024 {
            for vcpu in 0..self.phys.len() {
                if v.is_enabled(vcpu, intid)
                    || v.is_pending(vcpu, intid)
                    || v.priority(vcpu, intid) != 0
                {
                    return Err(format!("INTID {intid} kept state for vCPU {vcpu}"));
                }
            }
            if intid >= PRIVATE_INTIDS && v.target_of(intid) != 0 {
                return Err(format!(
                    "SPI {intid} still routed to vCPU {}",
                    v.target_of(intid)
                ));
            }
        }
        Ok(())
    }
}

/// The bytes of `value` (a `width` read of per-INTID bytes from INTID
/// `first`) that belong to interrupts the VM does not own are zero.
fn unowned_bytes_zero(v: &Vgic, first: u32, width: AccessWidth, value: u64) -> bool {
    (0..width.bytes() as u32).all(|i| v.owns(first + i) || value >> (8 * i) & 0xff == 0)
}

/// The bits of a 32-INTID bitmap read from INTID `first` that belong to
/// interrupts the VM does not own are zero.
fn unowned_bits_zero(v: &Vgic, first: u32, value: u64) -> bool {
    (0..32).all(|b| v.owns(first + b) || value >> b & 1 == 0)
}

/// `device_vgic_gicd`: the distributor.
struct Gicd(Case<Distributor>);

impl Model for Gicd {
    type Device = Distributor;
    const NAME: &'static str = "vgic_gicd";
    const REGISTERS: &'static [u64] = &[
        0x0, 0x4, 0x8, 0x80, 0x84, 0x100, 0x104, 0x17c, 0x180, 0x184, 0x200, 0x204, 0x280, 0x284,
        0x300, 0x400, 0x420, 0x424, 0x428, 0x7f8, 0xc00, 0xc04, 0xc08, 0xcfc, 0x6000, 0x6100,
        0x6108, 0x6140, 0x7fd8, 0xffe8,
    ];
    const WINDOW: u64 = GICD_SIZE;
    const MAX_VCPUS: usize = 4;

    fn new(config: u64) -> Self {
        Self(Case::new(config, Distributor::new))
    }
    fn device(&self) -> &Distributor {
        &self.0.front
    }
    fn vcpus(&self) -> usize {
        self.0.phys.len()
    }

    fn after(&mut self, a: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        self.0.check_calls()?;
        let (Ok(value), None) = (outcome, a.write) else {
            return Ok(());
        };
        let v = self.0.vgic.get();
        let ok = match a.offset {
            0x4 => *self.0.typer.get_or_insert(value) == value,
            0x100..0x400 if a.width == AccessWidth::Word => {
                let first = ((a.offset & 0x7f) / 4 * 32) as u32;
                if first < PRIVATE_INTIDS {
                    value == 0
                } else {
                    unowned_bits_zero(v, first, value)
                }
            }
            0x400..0x800 => unowned_bytes_zero(v, (a.offset - 0x400) as u32, a.width, value),
            0x6000..0x8000 if a.offset.is_multiple_of(8) => {
                let intid = ((a.offset - 0x6000) / 8) as u32;
                if v.owns(intid) && intid >= PRIVATE_INTIDS {
                    value < self.0.phys.len() as u64
                } else {
                    value == 0
                }
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "read {value:#x} shows an interrupt the VM does not own (VM owns {:?})",
                self.0.spis
            ))
        }
    }

    fn reset(&mut self) -> Result<(), String> {
        self.0.reset()
    }

    fn finish(&mut self) -> Result<(), String> {
        self.0.check_state()
    }
}

#[test]
fn fuzz_device_vgic_gicd() {
    fuzz_device::<Gicd>();
}

/// `device_vgic_gicr`: the redistributor frames (one per vCPU; offsets past
/// the VM's last frame are drawn too).
struct Gicr(Case<Redistributors>);

/// Redistributor registers of one frame: RD_base then SGI_base.
const fn frame(f: u64) -> [u64; 14] {
    let b = f * GICR_FRAME_SIZE;
    let s = b + 0x1_0000;
    [
        b,
        b + 0x4,
        b + 0x8,
        b + 0xc,
        b + 0x14,
        b + 0xffe8,
        s + 0x80,
        s + 0x100,
        s + 0x180,
        s + 0x200,
        s + 0x280,
        s + 0x400,
        s + 0x41c,
        s + 0xc04,
    ]
}

const GICR_REGISTERS: [u64; 56] = {
    let mut all = [0; 56];
    let mut f = 0;
    while f < 4 {
        let regs = frame(f as u64);
        let mut i = 0;
        while i < 14 {
            all[f * 14 + i] = regs[i];
            i += 1;
        }
        f += 1;
    }
    all
};

impl Model for Gicr {
    type Device = Redistributors;
    const NAME: &'static str = "vgic_gicr";
    const REGISTERS: &'static [u64] = &GICR_REGISTERS;
    const WINDOW: u64 = 4 * GICR_FRAME_SIZE;
    const MAX_VCPUS: usize = 4;

    fn new(config: u64) -> Self {
        Self(Case::new(config, Redistributors::new))
    }
    fn device(&self) -> &Redistributors {
        &self.0.front
    }
    fn vcpus(&self) -> usize {
        self.0.phys.len()
    }

    fn after(&mut self, a: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        self.0.check_calls()?;
        let (Ok(value), None) = (outcome, a.write) else {
            return Ok(());
        };
        let v = self.0.vgic.get();
        let off = a.offset % GICR_FRAME_SIZE;
        let ok = match off.checked_sub(0x1_0000) {
            // SGI_base bitmaps (private INTIDs 0-31) and priorities.
            Some(0x100..0x400) if a.width == AccessWidth::Word && off & 0x7f == 0 => {
                unowned_bits_zero(v, 0, value)
            }
            Some(o @ 0x400..0x420) => unowned_bytes_zero(v, (o - 0x400) as u32, a.width, value),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "read {value:#x} shows a private interrupt the VM does not own"
            ))
        }
    }

    fn reset(&mut self) -> Result<(), String> {
        self.0.reset()
    }

    fn finish(&mut self) -> Result<(), String> {
        self.0.check_state()
    }
}

#[test]
fn fuzz_device_vgic_gicr() {
    fuzz_device::<Gicr>();
}

/// `vgic_sgi`: any ICC_SGI1R_EL1 value written by any vCPU makes exactly the
/// SGI it names pending on exactly the vCPUs it names that the VM has
/// (IRM: all but the sender), and nothing else; the hardware is only asked
/// about the VM's own CPUs.
#[test]
fn fuzz_vgic_sgi() {
    use crate::devices::vgic::gicv3::send_sgi1r;
    use tessera_fuzz::proptest::prelude::*;
    let value = prop_oneof![
        any::<u64>(),
        // Aff1-3 and RS zero, a small target list: the common, valid form.
        (0u64..16, 0u64..0x10000, any::<bool>())
            .prop_map(|(sgi, list, irm)| sgi << 24 | list & 0xff | u64::from(irm) << 40),
    ];
    let input = (any::<u64>(), 0usize..4, prop::collection::vec(value, 1..8));
    tessera_fuzz::run("vgic_sgi", input, |(config, from, writes)| {
        let case: Case<()> = Case::new(config, |_| ());
        let (v, n) = (case.vgic.get(), case.phys.len());
        let from = from % n;
        let mut want = [0u16; 4];
        for w in writes {
            send_sgi1r(v, from, w);
            let sgi = (w >> 24 & 0xf) as u16;
            let targets: Vec<usize> = if w >> 40 & 1 == 1 {
                (0..n).filter(|&t| t != from).collect()
            } else if w >> 16 & 0xff != 0
                || w >> 32 & 0xff != 0
                || w >> 44 & 0xf != 0
                || w >> 48 & 0xff != 0
            {
                Vec::new()
            } else {
                (0..n).filter(|&t| w >> t & 1 == 1).collect()
            };
            for t in targets {
                want[t] |= 1 << sgi;
            }
            case.check_calls().map_err(TestCaseError::fail)?;
        }
        for (vcpu, sgis) in want.iter().enumerate().take(n) {
            for intid in 0..64 {
                let expected = intid < 16 && sgis >> intid & 1 == 1;
                tessera_fuzz::check(v.is_pending(vcpu, intid) == expected, || {
                    format!("vCPU {vcpu} of {n}, INTID {intid}: pending {}", !expected)
                })?;
            }
        }
        Ok(())
    });
}
