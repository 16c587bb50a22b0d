//! `ivc_pool`: arbitrary sequences of IVC hypercalls (any caller, any
//! arguments, ids that were real once or never), doorbell rings and VM
//! departures against one pool never panic, and what the pool asks of the
//! hardware always keeps partitioning: pages are mapped only into pool
//! members, inside their window, at the pool page of the same offset, into
//! two VMs at most; a failed call changes nothing; memory is scrubbed only
//! when no VM maps it; IVC_POOL_INFO's free bytes are the pool minus what
//! is mapped; rings reach members only, with their own SPI; and once every
//! member has departed nothing is mapped and the pool is whole again.

use super::Leaked;
use crate::devices::{Accessor, MmioDevice};
use crate::exit::AccessWidth;
use crate::ivc::dynamic::{self, reg, PoolDoorbell, PoolMemory, PoolState};
use crate::ivc::Notify;
use crate::mm::table::MapError;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use std::sync::Mutex;
use tessera_abi::tessera;
use tessera_config::{ChannelPool, PoolMember};
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};

const PAGE: u64 = 0x1000;
const HPA: u64 = 0x43b0_0000;
/// VMs 0 and 1 are members (windows below), VM 2 is not.
const WINDOWS: [u64; 2] = [0x6000_0000, 0x7000_0000];
const IRQS: [u32; 2] = [50, 51];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Map(u16, u64, u64, u64),
    Unmap(u16, u64, u64),
    Scrub(u64, u64),
    Ring(u16, u32),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Effect>>);

impl PoolMemory for Recorder {
    fn map(&self, vm: u16, gpa: u64, hpa: u64, size: u64) -> Result<(), MapError> {
        self.0.lock().unwrap().push(Effect::Map(vm, gpa, hpa, size));
        Ok(())
    }
    fn unmap(&self, vm: u16, gpa: u64, size: u64) {
        self.0.lock().unwrap().push(Effect::Unmap(vm, gpa, size));
    }
    fn scrub(&self, hpa: u64, size: u64) {
        self.0.lock().unwrap().push(Effect::Scrub(hpa, size));
    }
}

impl Notify for Recorder {
    fn notify(&self, vm_id: u16, irq: u32) {
        self.0.lock().unwrap().push(Effect::Ring(vm_id, irq));
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A hypercall: caller, call index (0-4 IVC, 5 anything), x1, x2.
    Call(u16, u8, Arg, u64),
    /// A RING of a channel id through the caller's doorbell.
    Ring(u16, Arg),
    /// The VM stops or is reset.
    Depart(u16),
}

/// An argument: a channel id returned earlier (by index), a peer-like
/// small number, or anything.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Seen(usize),
    Small(u64),
    Any(u64),
}

fn arg() -> impl Strategy<Value = Arg> {
    prop_oneof![
        6 => (0usize..16).prop_map(Arg::Seen),
        6 => (0u64..3).prop_map(Arg::Small),
        1 => any::<u64>().prop_map(Arg::Any),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => (1u64..=16).prop_map(|p| p * PAGE),
        2 => 0u64..0x2_0000,
        1 => any::<u64>(),
    ]
}

/// Mostly the members, now and then the VM outside the pool.
fn vm() -> impl Strategy<Value = u16> {
    prop_oneof![4 => Just(0u16), 4 => Just(1u16), 1 => Just(2u16)]
}

/// Index into [`CALLS`], weighted towards the calls that change the pool.
fn call() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8), 1 => 3u8..6]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (vm(), call(), arg(), size()).prop_map(|(vm, c, a, s)| Step::Call(vm, c, a, s)),
        3 => (vm(), arg()).prop_map(|(vm, a)| Step::Ring(vm, a)),
        1 => vm().prop_map(Step::Depart),
    ]
}

const CALLS: [u32; 6] = [
    tessera::IVC_ALLOC,
    tessera::IVC_ATTACH,
    tessera::IVC_RELEASE,
    tessera::IVC_STATUS,
    tessera::IVC_POOL_INFO,
    0xc600_001f,
];

/// Who maps each pool page: (VM, guest page) per pool page offset.
type Shadow = BTreeMap<u64, Vec<(u16, u64)>>;

/// Applies and checks the effects of one step.
fn apply(effects: &[Effect], shadow: &mut Shadow, pool_size: u64) -> Result<(), TestCaseError> {
    for e in effects {
        match *e {
            Effect::Map(vm, gpa, hpa, size) => {
                let window = WINDOWS.get(usize::from(vm)).copied();
                check(window.is_some(), || format!("{e:x?}: not a member"))?;
                let window = window.unwrap_or(0);
                let offset = hpa.wrapping_sub(HPA);
                check(
                    size > 0
                        && size % PAGE == 0
                        && hpa >= HPA
                        && offset + size <= pool_size
                        && gpa == window + offset,
                    || format!("{e:x?}: outside the window or not at its pool offset"),
                )?;
                for p in (offset..offset + size).step_by(PAGE as usize) {
                    let users = shadow.entry(p).or_default();
                    check(
                        !users.iter().any(|&(v, _)| v == vm) && users.len() < 2,
                        || format!("{e:x?}: page {p:#x} already mapped by {users:?}"),
                    )?;
                    users.push((vm, window + p));
                }
            }
            Effect::Unmap(vm, gpa, size) => {
                let window = WINDOWS.get(usize::from(vm)).copied().unwrap_or(0);
                let offset = gpa.wrapping_sub(window);
                for p in (offset..offset.saturating_add(size)).step_by(PAGE as usize) {
                    let users = shadow.entry(p).or_default();
                    let before = users.len();
                    users.retain(|&(v, _)| v != vm);
                    check(users.len() + 1 == before, || {
                        format!("{e:x?}: page {p:#x} was not mapped there")
                    })?;
                }
                shadow.retain(|_, u| !u.is_empty());
            }
            Effect::Scrub(hpa, size) => {
                let offset = hpa.wrapping_sub(HPA);
                check(
                    (offset..offset.saturating_add(size))
                        .step_by(PAGE as usize)
                        .all(|p| !shadow.contains_key(&p)),
                    || format!("{e:x?}: scrubbing mapped memory"),
                )?;
            }
            Effect::Ring(vm, irq) => check(IRQS.get(usize::from(vm)) == Some(&irq), || {
                format!("{e:x?}: not a member's doorbell")
            })?,
        }
    }
    Ok(())
}

#[test]
fn fuzz_ivc_pool() {
    let input = (
        (1u64..=64).prop_map(|p| p * PAGE),
        1u32..=8,
        1u32..=8,
        prop::collection::vec(step(), 1..48),
    );
    let classes = run_classified(
        "ivc_pool",
        input,
        |(pool_size, max_channels, per_vm, steps)| {
            let members = Leaked::new([0, 1].map(|i| PoolMember {
                vm_id: i as u16,
                window: WINDOWS[i],
                irq: IRQS[i],
                doorbell_gpa: 0x0a90_0000,
            }));
            let config = Leaked::new(ChannelPool {
                name: "fuzz",
                id: 0,
                hpa: HPA,
                size: pool_size,
                max_channels,
                max_per_vm: per_vm.min(max_channels),
                members: members.get(),
            });
            let hw = Leaked::new(Recorder::default());
            let states = Leaked::new([PoolState::new(config.get())]);
            let states: &'static [PoolState] = states.get();
            let bells = [0, 1].map(|m| PoolDoorbell::new(&states[0], m, hw.get()));
            let mut shadow = Shadow::new();
            let mut ids: Vec<u64> = Vec::new();
            let mut attached = false;
            let value = |a: Arg, ids: &[u64]| match a {
                Arg::Seen(i) if !ids.is_empty() => ids[i % ids.len()],
                Arg::Seen(i) => i as u64,
                Arg::Small(v) | Arg::Any(v) => v,
            };
            for s in &steps {
                match *s {
                    Step::Call(vm, c, a, size) => {
                        let nr = CALLS[usize::from(c)];
                        let x1 = value(a, &ids);
                        let r =
                            dynamic::hypercall(states, hw.get(), hw.get(), vm, nr, [x1, size, 0]);
                        let effects = core::mem::take(&mut *hw.get().0.lock().unwrap());
                        let Some(r) = r else {
                            check(nr == 0xc600_001f, || format!("{nr:#x} not served"))?;
                            continue;
                        };
                        check(r[0] == 0 || effects.is_empty(), || {
                            format!("{s:?} failed ({:#x}) yet did {effects:x?}", r[0])
                        })?;
                        if nr == tessera::IVC_ALLOC && r[0] == 0 {
                            ids.push(r[1]);
                        }
                        attached |= nr == tessera::IVC_ATTACH && r[0] == 0;
                        apply(&effects, &mut shadow, pool_size)?;
                    }
                    Step::Ring(vm, a) => {
                        let v = value(a, &ids);
                        if let Some(bell) = bells.get(usize::from(vm)) {
                            let w =
                                bell.write(Accessor { vcpu: 0 }, reg::RING, AccessWidth::Word, v);
                            check(w.is_ok(), || format!("RING {v:#x} refused"))?;
                        }
                        let effects = core::mem::take(&mut *hw.get().0.lock().unwrap());
                        check(effects.len() <= 1, || format!("one ring did {effects:x?}"))?;
                        apply(&effects, &mut shadow, pool_size)?;
                    }
                    Step::Depart(vm) => {
                        dynamic::depart(states, hw.get(), hw.get(), vm);
                        let effects = core::mem::take(&mut *hw.get().0.lock().unwrap());
                        check(
                            effects.iter().all(|e| !matches!(e, Effect::Map(..))),
                            || format!("departure mapped: {effects:x?}"),
                        )?;
                        apply(&effects, &mut shadow, pool_size)?;
                        check(!shadow.values().flatten().any(|&(v, _)| v == vm), || {
                            format!("VM {vm} still maps pages after departing")
                        })?;
                    }
                }
                let info = dynamic::hypercall(
                    states,
                    hw.get(),
                    hw.get(),
                    0,
                    tessera::IVC_POOL_INFO,
                    [0; 3],
                );
                let mapped = shadow.len() as u64 * PAGE;
                check(
                    info.is_some_and(|i| i[0] == 0 && i[2] == pool_size - mapped),
                    || format!("pool info {info:x?} with {mapped:#x} mapped"),
                )?;
            }
            for vm in [0, 1] {
                dynamic::depart(states, hw.get(), hw.get(), vm);
            }
            let effects = core::mem::take(&mut *hw.get().0.lock().unwrap());
            apply(&effects, &mut shadow, pool_size)?;
            let info = dynamic::hypercall(
                states,
                hw.get(),
                hw.get(),
                0,
                tessera::IVC_POOL_INFO,
                [0; 3],
            );
            check(
                shadow.is_empty()
                    && info == Some([0, pool_size, pool_size, u64::from(max_channels.min(32)), 0]),
                || format!("after every departure: {shadow:x?} mapped, info {info:x?}"),
            )?;
            Ok(Some(match (attached, ids.is_empty()) {
                (true, _) => "with attaches",
                (false, false) => "with allocations only",
                (false, true) => "with no channel",
            }))
        },
    );
    // The generator must keep reaching attached channels (about 12 % do).
    let reached = classes.count("with attaches");
    assert!(
        reached * 20 >= u64::from(tessera_fuzz::cases()),
        "{classes:?}"
    );
}
