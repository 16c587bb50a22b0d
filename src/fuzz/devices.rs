//! Device register models: arbitrary access sequences (any offset, width
//! and value, as a guest can issue them) never panic and keep each model's
//! invariants. One generic driver, [`fuzz_device`]; a device joins with an
//! [`Model`] implementation and a one-line `#[test]`.

use crate::devices::pl011::{LineSink, VirtualPl011, LINE_MAX};
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run};

/// One guest access, as the MMIO bus hands it to a device.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The vCPU making it (an index below the model's vCPU count, as the
    /// bus always passes).
    pub vcpu: usize,
    /// Offset from the device base.
    pub offset: u64,
    /// Width.
    pub width: AccessWidth,
    /// `Some(value)` for a write (already truncated to the width), `None`
    /// for a read.
    pub write: Option<u64>,
}

/// A device model under fuzz, with whatever shadow state its invariants
/// need. Only `new`, `device` and the constants are required.
pub trait Model {
    /// The device type.
    type Device: MmioDevice;
    /// Target name in reports (`device_<name>`).
    const NAME: &'static str;
    /// Register offsets to hit often (offsets near them, anywhere in the
    /// window and anywhere at all are drawn too).
    const REGISTERS: &'static [u64];
    /// Size of the device's MMIO window.
    const WINDOW: u64;
    /// Most vCPUs a VM of this model has (accesses come from vCPUs below
    /// [`Model::vcpus`]).
    const MAX_VCPUS: usize = 1;
    /// A device in its reset state; `config` is a random number the model
    /// may derive its configuration from (vCPUs, interrupts owned...).
    fn new(config: u64) -> Self;
    /// The device.
    fn device(&self) -> &Self::Device;
    /// vCPUs of this instance (1..=MAX_VCPUS).
    fn vcpus(&self) -> usize {
        1
    }
    /// Checks the outcome of `access` and the device's state after it.
    fn after(&mut self, access: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        let _ = (access, outcome);
        Ok(())
    }
    /// Resets the device as a VM reset does, and checks the result.
    fn reset(&mut self) -> Result<(), String> {
        self.device().reset();
        Ok(())
    }
    /// Checks invariants too costly for every access, after the sequence.
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

fn width() -> impl Strategy<Value = AccessWidth> {
    prop_oneof![
        Just(AccessWidth::Byte),
        Just(AccessWidth::Half),
        Just(AccessWidth::Word),
        Just(AccessWidth::Double)
    ]
}

fn access<M: Model>() -> impl Strategy<Value = Access> {
    let offset = prop_oneof![
        6 => (prop::sample::select(M::REGISTERS), prop_oneof![3 => Just(0u64), 1 => 1u64..8])
            .prop_map(|(r, d)| r + d),
        2 => 0..M::WINDOW,
        1 => any::<u64>(),
    ];
    // Writes of bytes the guest is likely to send, or anything.
    let value = prop_oneof![
        any::<u64>(),
        prop::sample::select(&b"\n\rab"[..]).prop_map(u64::from)
    ];
    (
        0..M::MAX_VCPUS,
        offset,
        width(),
        prop::option::weighted(0.6, value),
    )
        .prop_map(|(vcpu, offset, width, write)| Access {
            vcpu,
            offset,
            width,
            write: write.map(|v| width.truncate(v)),
        })
}

/// Runs sequences of up to 64 steps against a fresh `M` each. A step is an
/// access, sometimes repeated up to 129 times (a guest polling a register
/// or writing a string), so deep states are reached too; or, rarely, a
/// reset of the device.
pub fn fuzz_device<M: Model>() {
    let name = format!("device_{}", M::NAME);
    let step = prop_oneof![
        40 => (access::<M>(), prop_oneof![9 => Just(1usize), 1 => 1usize..130]).prop_map(Some),
        1 => Just(None),
    ];
    let input = (any::<u64>(), prop::collection::vec(step, 1..64));
    run(&name, input, |(config, steps)| {
        let mut model = M::new(config);
        for (i, step) in steps.iter().enumerate() {
            let Some((a, times)) = step else {
                let verdict = model.reset();
                check(verdict.is_ok(), || {
                    format!("step {i}, reset: {}", verdict.unwrap_err())
                })?;
                continue;
            };
            let a = Access {
                vcpu: a.vcpu % model.vcpus(),
                ..*a
            };
            for _ in 0..*times {
                let dev = model.device();
                let from = Accessor { vcpu: a.vcpu };
                let outcome = match a.write {
                    Some(v) => dev.write(from, a.offset, a.width, v).map(|()| 0),
                    None => dev.read(from, a.offset, a.width),
                };
                let verdict = model.after(&a, outcome);
                check(verdict.is_ok(), || {
                    format!("step {i} {a:x?} -> {outcome:x?}: {}", verdict.unwrap_err())
                })?;
            }
        }
        let verdict = model.finish();
        check(verdict.is_ok(), || {
            format!("at the end: {}", verdict.unwrap_err())
        })
    });
}

#[test]
fn fuzz_device_pl011() {
    fuzz_device::<Pl011>();
}

/// Lines the UART emitted, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Vec<u8>>>>);

impl LineSink for Lines {
    fn emit_line(&self, line: &[u8]) {
        self.0.lock().expect("not poisoned").push(line.to_vec());
    }
}

/// The PL011 with a shadow of what the PL011 TRM (and Tessera's choice of
/// an always-ready transmitter) says it must show.
struct Pl011 {
    dev: VirtualPl011<Lines>,
    lines: Lines,
    /// Read/write registers: (offset, value), reset values from the TRM.
    regs: Vec<(u64, u64)>,
    /// Lines expected so far, how many were compared with the emitted
    /// ones, and the line being collected.
    expected: Vec<Vec<u8>>,
    compared: usize,
    pending: Vec<u8>,
}

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const RIS: u64 = 0x3c;
const MIS: u64 = 0x40;
const IMSC: u64 = 0x38;
const ID: u64 = 0xfe0;
/// Registers that read as zero and ignore writes (RSR/ECR, ILPR, ICR).
const ZERO: [u64; 3] = [0x04, 0x20, 0x44];
/// PeriphID0-3, PCellID0-3 of a PL011 r1p5.
const ID_VALUES: [u64; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
// FR bits.
const BUSY: u64 = 1 << 3;
const RXFE: u64 = 1 << 4;
const TXFF: u64 = 1 << 5;
const RXFF: u64 = 1 << 6;
const TXFE: u64 = 1 << 7;

impl Model for Pl011 {
    type Device = VirtualPl011<Lines>;
    const NAME: &'static str = "pl011";
    const REGISTERS: &'static [u64] = &[
        0x00, 0x04, 0x18, 0x20, 0x24, 0x28, 0x2c, 0x30, 0x34, 0x38, 0x3c, 0x40, 0x44, 0x48, 0xfe0,
        0xfe4, 0xfe8, 0xfec, 0xff0, 0xff4, 0xff8, 0xffc,
    ];
    const WINDOW: u64 = 0x1000;

    fn new(_: u64) -> Self {
        let lines = Lines::default();
        Self {
            dev: VirtualPl011::new(lines.clone()),
            lines,
            // IBRD FBRD LCR_H CR IFLS IMSC DMACR
            regs: [0x24, 0x28, 0x2c, 0x30, 0x34, 0x38, 0x48]
                .into_iter()
                .zip([0, 0, 0, 0x300, 0x12, 0, 0])
                .collect(),
            expected: Vec::new(),
            compared: 0,
            pending: Vec::new(),
        }
    }

    fn device(&self) -> &Self::Device {
        &self.dev
    }

    fn after(&mut self, a: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        let reg = self.regs.iter().position(|(o, _)| *o == a.offset);
        let id = (ID..=ID + 0x1c).contains(&a.offset);
        let known =
            reg.is_some() || [DR, FR, RIS, MIS].contains(&a.offset) || ZERO.contains(&a.offset);
        // What the access must return.
        let want = match (a.width, a.write) {
            (AccessWidth::Double, _) => Err(AccessError::Invalid),
            (_, Some(v)) => match reg {
                Some(i) => {
                    self.regs[i].1 = v & 0xffff_ffff;
                    Ok(0)
                }
                None if known || id => {
                    if a.offset == DR {
                        self.transmit(v as u8);
                    }
                    Ok(0)
                }
                None => Err(AccessError::Invalid),
            },
            (_, None) => match reg {
                Some(i) => Ok(self.regs[i].1),
                None if id && a.offset.is_multiple_of(4) => {
                    Ok(ID_VALUES[((a.offset - ID) / 4) as usize])
                }
                None if ZERO.contains(&a.offset) || a.offset == DR => Ok(0),
                None if known => outcome, // flags, checked below
                None => Err(AccessError::Invalid),
            },
        };
        if outcome != want {
            return Err(format!("expected {want:x?}"));
        }
        // Flags: a transmitter that is never full or busy (a polled guest
        // would spin forever), an empty receiver, consistent FIFO bits, and
        // MIS = RIS & IMSC.
        let word = |o| {
            self.dev
                .read(Accessor { vcpu: 0 }, o, AccessWidth::Word)
                .map_err(|e| format!("{o:#x}: {e:?}"))
        };
        let fr = word(FR)?;
        if fr & (TXFF | BUSY | RXFF) != 0 || fr & (TXFE | RXFE) != TXFE | RXFE {
            return Err(format!("FR {fr:#x}"));
        }
        let (ris, mis, imsc) = (word(RIS)?, word(MIS)?, word(IMSC)?);
        if mis != ris & imsc {
            return Err(format!("MIS {mis:#x} != RIS {ris:#x} & IMSC {imsc:#x}"));
        }
        // Output: exactly the bytes written to DR, in lines of at most
        // LINE_MAX bytes with no line ends (checked as they appear).
        let lines = self.lines.0.lock().expect("not poisoned");
        if lines.len() != self.expected.len() {
            return Err(format!(
                "emitted {} lines, expected {}",
                lines.len(),
                self.expected.len()
            ));
        }
        for (line, want) in lines.iter().zip(&self.expected).skip(self.compared) {
            if line.len() > LINE_MAX
                || line.contains(&b'\n')
                || line.contains(&b'\r')
                || line != want
            {
                return Err(format!("emitted {line:?}, expected {want:?}"));
            }
        }
        self.compared = lines.len();
        Ok(())
    }
}

impl Pl011 {
    /// The line discipline: `\n` ends a line, `\r` is dropped, a full line
    /// is emitted before the byte that would overflow it.
    fn transmit(&mut self, byte: u8) {
        match byte {
            b'\n' => self.expected.push(core::mem::take(&mut self.pending)),
            b'\r' => {}
            _ => {
                if self.pending.len() == LINE_MAX {
                    self.expected.push(core::mem::take(&mut self.pending));
                }
                self.pending.push(byte);
            }
        }
    }
}

/// A device that answers with who it is and the offset it was given, and
/// refuses a write value wider than the access.
struct Probe(u64);

impl MmioDevice for Probe {
    fn read(&self, _: Accessor, offset: u64, _: AccessWidth) -> Result<u64, AccessError> {
        Ok(self.0 << 48 | offset)
    }
    fn write(
        &self,
        _: Accessor,
        _: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        if width.truncate(value) == value {
            Ok(())
        } else {
            Err(AccessError::Invalid)
        }
    }
}

static PROBES: [Probe; 4] = [Probe(1), Probe(2), Probe(3), Probe(4)];

/// `bus_routing`: the MMIO bus hands an access to the device whose window
/// holds it, with the right offset and a value cut to the width; anything
/// else is refused. Windows as the config validator allows them: page
/// granular, disjoint, below the 39-bit IPA limit.
#[test]
fn fuzz_bus_routing() {
    let windows = prop::collection::vec((0u64..1 << 16, 1u64..64), 1..=4);
    let probes = prop::collection::vec((any::<u64>(), 0usize..6, width(), any::<u64>()), 1..16);
    run("bus_routing", (windows, probes), |(windows, probes)| {
        let mut bus = crate::devices::MmioBus::default();
        let (mut placed, mut end) = (Vec::new(), 0u64);
        for (i, (gap, pages)) in windows.into_iter().enumerate() {
            let base = end + gap * 0x1000 * 4096; // spread over the IPA space
            let size = pages * 0x1000;
            if base + size > 1 << 39 {
                break;
            }
            bus.add(base, size, &PROBES[i]);
            placed.push((base, size, PROBES[i].0));
            end = base + size;
        }
        for (raw, edge, w, value) in probes {
            // An address at a window edge, or anywhere.
            let addr = match placed.get(edge % 4) {
                Some(&(base, size, _)) if edge < 4 => {
                    [base, base + size - 1, base + size, base.wrapping_sub(1)][(raw % 4) as usize]
                }
                _ => raw,
            };
            let owner = placed.iter().find(|(b, s, _)| addr >= *b && addr - b < *s);
            let from = Accessor { vcpu: 0 };
            let (read, write) = (bus.read(from, addr, w), bus.write(from, addr, w, value));
            let ok = match owner {
                Some(&(base, _, id)) => read == Ok(id << 48 | (addr - base)) && write == Ok(()),
                None => read == Err(AccessError::Invalid) && write == Err(AccessError::Invalid),
            };
            check(ok, || {
                format!("{addr:#x} ({w:?}) in {owner:x?}: read {read:x?}, write {write:?}")
            })?;
        }
        Ok(())
    });
}
