//! `device_ivc_pci`: the `ivc-pci` bridge's configuration space under
//! arbitrary guest accesses (any offset, width and value), peers ringing
//! and the VM acknowledging, and resets, through the generic device driver
//! of [`super::devices`]. Invariants: accesses ECAM does not allow are
//! refused and anything outside the VM's functions reads as all ones; the
//! identity registers never change; the command register holds exactly the
//! writable bits last written; the status interrupt bit is set exactly
//! while a ring is pending; and the doorbell interrupt is raised exactly
//! once per ring while INTx is enabled, plus once when INTx is re-enabled
//! with a ring pending (so `uio_pci_generic` never loses one and never gets
//! a storm).

use super::devices::{fuzz_device, Access, Model};
use super::Leaked;
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use crate::ivc::pci::{Function, PciHost};
use crate::ivc::{reg, ChannelState, Doorbell, Notify};
use alloc::vec::Vec;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_config::{Channel, ChannelMember, IVC_PCI_ECAM_SIZE};

/// Counts the interrupts raised for each VM of the model.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Notify for Counter {
    fn notify(&self, vm_id: u16, irq: u32) {
        // Only the bridge's VM (id 1) is ever rung, with its own vector.
        if vm_id == 1 && irq == 40 {
            self.0.fetch_add(1, Ordering::SeqCst);
        } else {
            self.0.fetch_add(1 << 32, Ordering::SeqCst);
        }
    }
}

/// What the VM's side of one channel should look like.
#[derive(Clone, Copy, Default)]
struct Shadow {
    command: u16,
    pending: bool,
}

const WRITABLE: u16 = 0x0546;
const INTX_DISABLE: u16 = 1 << 10;

/// One to three channels between VM 0 (member 0, the ringer) and VM 1
/// (member 1, behind the bridge).
struct IvcPci {
    host: PciHost,
    /// Per channel: the ringer's doorbell and the VM's own.
    bells: Vec<(Doorbell<Counter>, Doorbell<Counter>)>,
    shadow: Vec<Shadow>,
    raised: usize,
    counter: Leaked<Counter>,
    _channels: Vec<Leaked<Channel>>,
    _states: Vec<Leaked<ChannelState>>,
    _members: Vec<Leaked<[ChannelMember; 2]>>,
}

impl IvcPci {
    fn check_raised(&self) -> Result<(), String> {
        let got = self.counter.get().0.load(Ordering::SeqCst);
        if got == self.raised {
            Ok(())
        } else {
            Err(format!(
                "{got:#x} interrupts raised, {:#x} expected",
                self.raised
            ))
        }
    }
}

impl Model for IvcPci {
    type Device = PciHost;
    const NAME: &'static str = "ivc_pci";
    // Command/status and its bytes, the BARs, the interrupt line, the IDs,
    // of device 0, 1, 2 and a function past them.
    const REGISTERS: &'static [u64] = &[
        0x04, 0x05, 0x06, 0x10, 0x18, 0x1c, 0x3c, 0x00, 0x8004, 0x8005, 0x10004, 0x10018, 0x18000,
        0x1004,
    ];
    const WINDOW: u64 = IVC_PCI_ECAM_SIZE;

    fn new(config: u64) -> Self {
        let n = 1 + (config % 3) as usize;
        let counter = Leaked::new(Counter::default());
        let (mut channels, mut states, mut members) = (Vec::new(), Vec::new(), Vec::new());
        let mut functions = Vec::new();
        let mut bells = Vec::new();
        for k in 0..n as u64 {
            let m = Leaked::new([
                ChannelMember {
                    vm_id: 0,
                    gpa: 0x5000_0000 + k * 0x10_0000,
                    writable: true,
                    irq: 41,
                    doorbell_gpa: 0x0a00_0000 + k * 0x1000,
                    line: 0,
                },
                ChannelMember {
                    vm_id: 1,
                    gpa: 0x6000_0000 + k * 0x10_0000,
                    writable: config & (1 << (8 + k)) == 0,
                    irq: 40,
                    doorbell_gpa: 0x0a80_0000 + k * 0x1000,
                    line: 0,
                },
            ]);
            let c = Leaked::new(Channel {
                name: "fuzz",
                id: k as u32,
                hpa: 0x43c0_0000,
                size: 0x1000 << (config >> 16 & 7),
                members: m.get(),
            });
            let s = Leaked::new(ChannelState::new());
            functions.push(Function::new(c.get(), s.get(), 1, counter.get()).expect("member 1"));
            bells.push((
                Doorbell::new(c.get(), s.get(), 0, counter.get()),
                Doorbell::new(c.get(), s.get(), 1, counter.get()),
            ));
            channels.push(c);
            states.push(s);
            members.push(m);
        }
        Self {
            host: PciHost::new(functions),
            bells,
            shadow: alloc::vec![Shadow::default(); n],
            raised: 0,
            counter,
            _channels: channels,
            _states: states,
            _members: members,
        }
    }

    fn device(&self) -> &PciHost {
        &self.host
    }

    fn after(&mut self, a: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        let bytes = a.width.bytes();
        if a.width == AccessWidth::Double || !a.offset.is_multiple_of(bytes) {
            return match outcome {
                Err(AccessError::Invalid) => Ok(()),
                other => Err(format!("ECAM refuses this access, got {other:x?}")),
            };
        }
        let devfn = a.offset >> 12;
        let at = a.offset & 0xfff;
        let function = devfn
            .is_multiple_of(8)
            .then(|| usize::try_from(devfn / 8).ok())
            .flatten()
            .filter(|&d| d < self.shadow.len());
        let Some(d) = function else {
            return match (a.write, outcome) {
                (None, Ok(v)) if v == a.width.truncate(u64::MAX) => Ok(()),
                (Some(_), Ok(_)) => Ok(()),
                (_, other) => Err(format!("an absent function reads all ones, got {other:x?}")),
            };
        };
        let Ok(value) = outcome else {
            return Err(format!("a function's register refused {outcome:x?}"));
        };
        let shift = (at & 3) * 8;
        let lanes = (a.width.truncate(u64::MAX) as u32) << shift;
        let dword = at & !3;
        let s = &mut self.shadow[d];
        match (a.write, dword) {
            (Some(v), 0x04) if lanes & 0xffff != 0 => {
                let merged = (u32::from(s.command) & !lanes) | ((v as u32) << shift & lanes);
                let command = merged as u16 & WRITABLE;
                let was_held = s.command & INTX_DISABLE != 0;
                if was_held && command & INTX_DISABLE == 0 && s.pending {
                    self.raised += 1;
                }
                s.command = command;
            }
            (None, 0x04) => {
                let status = if s.pending { 1u32 << 19 } else { 0 };
                let want = (u32::from(s.command) | status) & lanes;
                if value != u64::from(want >> shift) {
                    return Err(format!(
                        "command/status read {value:#x}, expected {:#x}",
                        want >> shift
                    ));
                }
            }
            (None, 0x00) => {
                let want = (0x1c00_7e55u32 & lanes) >> shift;
                if value != u64::from(want) {
                    return Err(format!("the ID register read {value:#x}"));
                }
            }
            (None, 0x08) if value != u64::from((0x0580_0001u32 & lanes) >> shift) => {
                return Err(format!("class/revision read {value:#x}"));
            }
            _ => {}
        }
        self.check_raised()
    }

    /// A peer rings the VM (which raises its interrupt unless INTx is
    /// disabled), or the VM acknowledges what is pending through its
    /// doorbell page (BAR0).
    fn event(&mut self, event: u64) -> Result<(), String> {
        let d = (event % self.shadow.len() as u64) as usize;
        let (ringer, own) = &self.bells[d];
        let s = &mut self.shadow[d];
        let from = Accessor { vcpu: 0 };
        if event >> 8 & 1 == 0 {
            ringer
                .write(from, reg::RING, AccessWidth::Word, 1)
                .map_err(|e| format!("ring refused: {e:?}"))?;
            s.pending = true;
            if s.command & INTX_DISABLE == 0 {
                self.raised += 1;
            }
        } else {
            let pending = own
                .read(from, reg::PENDING, AccessWidth::Word)
                .map_err(|e| format!("PENDING refused: {e:?}"))?;
            if (pending != 0) != s.pending {
                return Err(format!("PENDING reads {pending:#x}"));
            }
            own.write(from, reg::ACK, AccessWidth::Word, pending)
                .map_err(|e| format!("ACK refused: {e:?}"))?;
            s.pending = false;
        }
        self.check_raised()
    }

    /// A VM reset: the bridge and the VM's doorbells go back to reset;
    /// nothing is raised.
    fn reset(&mut self) -> Result<(), String> {
        self.host.reset();
        for ((_, own), s) in self.bells.iter().zip(&mut self.shadow) {
            own.reset();
            *s = Shadow::default();
        }
        for d in 0..self.shadow.len() as u64 {
            let command = self
                .host
                .read(Accessor { vcpu: 0 }, d << 15 | 4, AccessWidth::Word);
            if command != Ok(0) {
                return Err(format!("device {d} after reset: {command:x?}"));
            }
        }
        self.check_raised()
    }
}

#[test]
fn fuzz_device_ivc_pci() {
    fuzz_device::<IvcPci>();
}
