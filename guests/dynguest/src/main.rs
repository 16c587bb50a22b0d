//! Channels allocated at run time (docs/IVC.md), run by the three one-vCPU
//! VMs of `tests/configs/ivc-dynamic.toml`; the role comes from the VM id:
//!
//! - VM 0, "owner", and VM 1, "peer", share pool 0 (256 KiB, 4 channels,
//!   3 per VM). 1,000 rounds: the owner allocates (the peer's doorbell
//!   rings with the offer), writes a message, waits for the attach ring,
//!   rings; the peer reads OFFER, attaches, checks the message after the
//!   ring, answers and rings; the owner checks the answer and rings "done";
//!   the peer releases, which rings the owner; both check the id is dead
//!   and, in the first round, that the page is gone from their stage 2
//!   (a read aborts, so the TLBs were invalidated). Every bad argument gets
//!   its code; the pool is exhausted both ways (per-VM limit, slots,
//!   bytes); then the owner resets itself while the peer holds one of its
//!   channels: the peer is rung, sees `PEER_GONE` and still reads what the
//!   owner wrote, releases it; on its second boot the owner holds nothing,
//!   allocates again and the pair exchanges one more message.
//! - VM 2, "outsider", is not granted the pool: every call is refused.
//!
//! Prints `TEST <name>: PASS|FAIL <detail>` and `RESULT: ...`, then powers
//! its VM off.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use tessera_abi::{ivc, tessera};
use tessera_guest::exception::{guarded, probe_read32, set_irq_handler};
use tessera_guest::gic::{self, gicd, GICD_BASE};
use tessera_guest::{cpu, hypercall, println, psci, time};

tessera_guest::entry!(main);

/// The pool doorbell page and its interrupt (the same in both members).
const BELL: u64 = 0x0a90_0000;
const BELL_IRQ: u32 = 50;
/// Each member's window onto the pool.
const WINDOW: u64 = 0x6000_0000;
const POOL_SIZE: u64 = 0x4_0000;
const POOL_SLOTS: u64 = 4;

/// The doorbell page's registers (the hypervisor's ABI).
use tessera_abi::pool_doorbell as reg;

const OWNER: u64 = 0;
const PEER: u64 = 1;
const ROUNDS: u32 = 1000;
const TIMEOUT_MS: u64 = 5_000;
/// Word offsets in a channel.
const REPLY: u64 = 8;
const MAGIC: u32 = 0x6479_6e21;
const RESET_MAGIC: u32 = 0x7265_7365;

/// PENDING bits the doorbell interrupt acknowledged and nobody took yet.
static SEEN: AtomicU32 = AtomicU32::new(0);
static IRQS: AtomicU32 = AtomicU32::new(0);
static OTHER_IRQS: AtomicU32 = AtomicU32::new(0);

fn rd(addr: u64) -> u32 {
    // SAFETY: an aligned word of a mapped channel or the doorbell page.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn wr(addr: u64, v: u32) {
    // SAFETY: as `rd`; channels are read-write for both parties.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

fn irq_handler() {
    let intid = gic::ack();
    if intid >= 1020 {
        return;
    }
    if intid == BELL_IRQ {
        let pending = rd(BELL + reg::PENDING);
        wr(BELL + reg::ACK, pending);
        SEEN.fetch_or(pending, Ordering::Relaxed);
        IRQS.store(IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        OTHER_IRQS.store(OTHER_IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    cpu::dmb();
    gic::eoi(intid);
}

/// Sleeps (WFI, IRQs masked around the check) until a doorbell interrupt
/// delivered one of the PENDING bits in `mask`; takes and returns them.
fn wait_event(mask: u32) -> Option<u32> {
    let mut got = 0;
    time::wait_until(TIMEOUT_MS, || {
        gic::mask_irq();
        if SEEN.load(Ordering::Relaxed) & mask == 0 {
            cpu::wfi();
        }
        got = SEEN.load(Ordering::Relaxed) & mask;
        SEEN.fetch_and(!got, Ordering::Relaxed);
        gic::unmask_irq();
        got != 0
    })
    .then_some(got)
}

/// The slot (PENDING bit) of channel `id`.
fn bit(id: u64) -> u32 {
    1 << (id & 0x1f)
}

fn ring(id: u64) {
    // The message is in place before the peer can see the ring.
    cpu::dmb();
    wr(BELL + reg::RING, id as u32);
}

/// An IVC call: x0 as a status, x1-x4.
fn call(nr: u32, a1: u64, a2: u64) -> (i64, [u64; 4]) {
    let r = hypercall::call(u64::from(nr), a1, a2, 0);
    (r.x0 as i64, [r.x1, r.x2, r.x3, r.x4])
}

fn alloc(peer: u64, size: u64) -> (i64, [u64; 4]) {
    call(tessera::IVC_ALLOC, peer, size)
}

fn code(nr: u32, a1: u64, a2: u64) -> i64 {
    call(nr, a1, a2).0
}

/// IVC_POOL_INFO of pool 0: size, free bytes, free slots, held.
fn info() -> [u64; 4] {
    call(tessera::IVC_POOL_INFO, 0, 0).1
}

fn state(id: u64) -> (i64, u64) {
    let (c, r) = call(tessera::IVC_STATUS, id, 0);
    (c, r[0])
}

/// Whether reading `addr` aborts (it is not mapped in this VM).
fn unmapped(addr: u64) -> bool {
    // SAFETY: an aligned read; it faults inside `guarded` or is harmless.
    let (_, fault) = guarded(|| unsafe { probe_read32(addr) });
    fault.is_some_and(|f| f.ec() == 0x25 && f.far == addr)
}

fn payload(round: u32, i: u32, salt: u32) -> u32 {
    round.wrapping_mul(0x9e37_79b9) ^ i.wrapping_mul(0x85eb_ca6b) ^ salt
}

struct Tally {
    pass: u32,
    fail: u32,
}

impl Tally {
    fn report(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments) {
        if ok {
            self.pass += 1;
            println!("TEST {}: PASS", name);
        } else {
            self.fail += 1;
            println!("TEST {}: FAIL {}", name, detail);
        }
    }
}

fn main() -> ! {
    let mut t = Tally { pass: 0, fail: 0 };
    let me = hypercall::vm_info().map_or(u64::MAX, |i| i.id);
    let resets = hypercall::vm_info().map_or(0, |i| i.resets);
    if me != OWNER && me != PEER {
        outsider(&mut t);
    } else {
        gic::init_this_cpu();
        set_irq_handler(irq_handler);
        let n = u64::from(BELL_IRQ / 32) * 4;
        // SAFETY: the VM's own distributor registers.
        unsafe {
            core::ptr::write_volatile(
                (GICD_BASE + gicd::IPRIORITYR + u64::from(BELL_IRQ)) as *mut u8,
                0x80,
            );
            gic::write32(GICD_BASE + 0x80 + n, 1 << (BELL_IRQ % 32));
            gic::write32(GICD_BASE + gicd::ISENABLER + n, 1 << (BELL_IRQ % 32));
        }
        gic::unmask_irq();
        t.report(
            "pool-doorbell-identity",
            rd(BELL + reg::POOL_ID) == 0
                && rd(BELL + reg::MEMBERS) == 2
                && u64::from(rd(BELL + reg::SELF)) == me
                && u64::from(rd(BELL + reg::SIZE_LO)) == POOL_SIZE,
            format_args!("self {}", rd(BELL + reg::SELF)),
        );
        match (me, resets) {
            (OWNER, 0) => owner(&mut t),
            (OWNER, _) => owner_after_reset(&mut t),
            _ => peer(&mut t),
        }
        t.report(
            "no-stray-interrupts",
            OTHER_IRQS.load(Ordering::Relaxed) == 0,
            format_args!("{} other interrupts", OTHER_IRQS.load(Ordering::Relaxed)),
        );
    }
    println!("RESULT: pass={} fail={}", t.pass, t.fail);
    if me == OWNER && resets == 0 {
        psci::system_reset()
    }
    psci::system_off()
}

fn outsider(t: &mut Tally) {
    let refused = [
        alloc(PEER, 0x1000).0 == ivc::DENIED,
        alloc(OWNER, 0x1000).0 == ivc::DENIED,
        code(tessera::IVC_POOL_INFO, 0, 0) == ivc::DENIED,
        // Generation 1, pool 0, slot 0: the owner's first channel.
        code(tessera::IVC_ATTACH, 0x0001_0000, 0) == ivc::NOT_YOURS,
        code(tessera::IVC_RELEASE, 0x0001_0000, 0) == ivc::NOT_YOURS,
        code(tessera::IVC_STATUS, 0x0001_0000, 0) == ivc::NOT_YOURS,
        code(tessera::IVC_ATTACH, 0x0001_0500, 0) == ivc::BAD_ID,
    ];
    t.report(
        "not-granted-vm-refused",
        refused.iter().all(|&ok| ok),
        format_args!("{:?}", refused),
    );
}

/// One exchange over a channel the owner allocates: the owner's side.
/// `check_fresh`: the memory must be all zero (scrubbed) first.
fn owner_round(round: u32, size: u64, check_fresh: bool) -> Result<(), &'static str> {
    let (c, r) = alloc(PEER, size);
    if c != 0 {
        return Err("alloc refused");
    }
    let (id, gpa) = (r[0], r[1]);
    if r[2] != size || gpa < WINDOW || gpa + size > WINDOW + POOL_SIZE {
        return Err("alloc gave a bad window");
    }
    if check_fresh && (0..size / 4).any(|w| rd(gpa + 4 * w) != 0) {
        return Err("new channel not scrubbed");
    }
    wr(gpa, round);
    for i in 1..8 {
        wr(gpa + 4 * u64::from(i), payload(round, i, 0));
    }
    wr(gpa + size - 4, round ^ MAGIC);
    if wait_event(bit(id)).is_none() || state(id) != (0, ivc::ATTACHED) {
        return Err("no attach ring");
    }
    ring(id);
    if wait_event(bit(id)).is_none() {
        return Err("no answer ring");
    }
    if rd(gpa + 4 * REPLY) != round + 1000 || rd(gpa + 4 * (REPLY + 1)) != payload(round, 1, 0x5a) {
        return Err("bad answer");
    }
    ring(id);
    if wait_event(bit(id)).is_none() {
        return Err("no release ring");
    }
    if state(id).0 != ivc::BAD_ID || code(tessera::IVC_RELEASE, id, 0) != ivc::BAD_ID {
        return Err("released id still alive");
    }
    // The peer's release took the page out of this VM too.
    if check_fresh && !unmapped(gpa) {
        return Err("page still mapped after the peer's release");
    }
    Ok(())
}

/// The peer's side of [`owner_round`].
fn peer_round(round: u32, size: u64, check_unmap: bool) -> Result<(), &'static str> {
    if wait_event(u32::MAX).is_none() {
        return Err("no offer ring");
    }
    let id = u64::from(rd(BELL + reg::OFFER));
    if id == 0 {
        return Err("no offer");
    }
    let (c, r) = call(tessera::IVC_ATTACH, id, 0);
    let gpa = r[0];
    if c != 0 || r[1] != size || r[2] != OWNER {
        return Err("attach refused");
    }
    if code(tessera::IVC_ATTACH, id, 0) != ivc::BAD_STATE {
        return Err("second attach accepted");
    }
    if wait_event(bit(id)).is_none() {
        return Err("no message ring");
    }
    let ok = rd(gpa) == round
        && (1..8).all(|i| rd(gpa + 4 * u64::from(i)) == payload(round, i, 0))
        && rd(gpa + size - 4) == round ^ MAGIC;
    if !ok {
        return Err("bad message");
    }
    wr(gpa + 4 * (REPLY + 1), payload(round, 1, 0x5a));
    wr(gpa + 4 * REPLY, round + 1000);
    ring(id);
    if wait_event(bit(id)).is_none() {
        return Err("no done ring");
    }
    if code(tessera::IVC_RELEASE, id, 0) != 0 {
        return Err("release refused");
    }
    if code(tessera::IVC_RELEASE, id, 0) != ivc::BAD_ID {
        return Err("double release accepted");
    }
    if check_unmap && !unmapped(gpa) {
        return Err("page still mapped after release");
    }
    Ok(())
}

fn size_of_round(round: u32) -> u64 {
    0x1000 * (1 + u64::from(round % 8))
}

fn owner(t: &mut Tally) {
    let start = info();
    t.report(
        "pool-info",
        start == [POOL_SIZE, POOL_SIZE, POOL_SLOTS, 0],
        format_args!("{:x?}", start),
    );
    let bad = [
        alloc(OWNER, 0x1000).0 == ivc::DENIED,
        alloc(2, 0x1000).0 == ivc::DENIED,
        alloc(1 << 16, 0x1000).0 == ivc::DENIED,
        alloc(PEER, 0).0 == ivc::INVALID,
        alloc(PEER, POOL_SIZE + 1).0 == ivc::INVALID,
        code(tessera::IVC_RELEASE, 0x1234_0000, 0) == ivc::BAD_ID,
        code(tessera::IVC_STATUS, u64::MAX, 0) == ivc::BAD_ID,
        code(tessera::IVC_ATTACH, 0, 0) == ivc::BAD_ID,
        code(tessera::IVC_POOL_INFO, 7, 0) == ivc::INVALID,
        info() == start,
    ];
    t.report(
        "bad-arguments",
        bad.iter().all(|&ok| ok),
        format_args!("{:?}", bad),
    );
    let mut result = Ok(());
    let mut failed_at = 0;
    for round in 0..ROUNDS {
        result = owner_round(round, size_of_round(round), round == 0);
        if result.is_err() {
            failed_at = round;
            break;
        }
    }
    let end = info();
    t.report(
        "alloc-attach-exchange-release-1000",
        result.is_ok() && end == start && IRQS.load(Ordering::Relaxed) >= ROUNDS,
        format_args!(
            "round {}: {:?}; pool {:x?}; irqs {}",
            failed_at,
            result,
            end,
            IRQS.load(Ordering::Relaxed)
        ),
    );

    // Exhaustion: three channels of 64 KiB reach the per-VM limit; the
    // peer then takes the last slot and finds no room.
    let mut held = [0u64; 3];
    let mut ok = true;
    for h in &mut held {
        let (c, r) = alloc(PEER, 0x1_0000);
        ok &= c == 0;
        *h = r[0];
    }
    ok &= alloc(PEER, 0x1000).0 == ivc::LIMIT;
    ok &= info() == [POOL_SIZE, 0x1_0000, 1, 3];
    t.report("per-vm-limit", ok, format_args!("{:x?}", info()));
    let full = time::wait_until(TIMEOUT_MS, || info()[2] == 0);
    let freed = [
        code(tessera::IVC_RELEASE, held[0], 0) == 0,
        code(tessera::IVC_RELEASE, held[1], 0) == 0,
        code(tessera::IVC_RELEASE, held[0], 0) == ivc::BAD_ID,
    ];
    t.report(
        "owner-release-and-double-release",
        full && freed.iter().all(|&ok| ok),
        format_args!("peer filled the pool: {}; {:?}", full, freed),
    );
    // The peer attaches the third; then this VM resets while it holds it.
    let (_, r) = call(tessera::IVC_STATUS, held[2], 0);
    wr(r[1], RESET_MAGIC);
    cpu::dmb();
    let attached = time::wait_until(TIMEOUT_MS, || state(held[2]) == (0, ivc::ATTACHED));
    t.report(
        "peer-attached-before-reset",
        attached,
        format_args!("{:?}", state(held[2])),
    );
}

/// Second boot: the reset released this VM's channels; allocating works
/// again and the pool ends as it began.
fn owner_after_reset(t: &mut Tally) {
    let held = info()[3];
    t.report(
        "reset-released-own-channels",
        held == 0 && rd(BELL + reg::PENDING) == 0,
        format_args!("holds {}", held),
    );
    let back = time::wait_until(TIMEOUT_MS, || {
        info() == [POOL_SIZE, POOL_SIZE, POOL_SLOTS, 0]
    });
    let round = owner_round(ROUNDS, 0x3000, true);
    t.report(
        "realloc-after-reset",
        back && round.is_ok(),
        format_args!("pool back {}: {:?}", back, round),
    );
    let end = info();
    t.report(
        "pool-back-to-start",
        end == [POOL_SIZE, POOL_SIZE, POOL_SLOTS, 0],
        format_args!("{:x?}", end),
    );
}

fn peer(t: &mut Tally) {
    let mut result = Ok(());
    let mut failed_at = 0;
    for round in 0..ROUNDS {
        result = peer_round(round, size_of_round(round), round == 0);
        if result.is_err() {
            failed_at = round;
            break;
        }
    }
    t.report(
        "attach-read-answer-release-1000",
        result.is_ok() && IRQS.load(Ordering::Relaxed) >= ROUNDS,
        format_args!(
            "round {}: {:?}; irqs {}",
            failed_at,
            result,
            IRQS.load(Ordering::Relaxed)
        ),
    );

    // The owner holds three channels (per-VM limit): one slot and 64 KiB
    // are left.
    let three = time::wait_until(TIMEOUT_MS, || info()[2] == 1);
    let too_big = alloc(OWNER, 0x2_0000).0 == ivc::NO_SPACE;
    let (c, r) = alloc(OWNER, 0x1_0000);
    let mine = r[0];
    let no_slot = alloc(OWNER, 0x1000).0 == ivc::NO_SPACE;
    let empty = info() == [POOL_SIZE, 0, 0, 1];
    t.report(
        "pool-exhaustion",
        three && too_big && c == 0 && no_slot && empty,
        format_args!("{} {} {} {} {:x?}", three, too_big, c, no_slot, info()),
    );
    // The owner releases two of its three; then this VM gives its own back
    // and attaches the owner's last one.
    let two = time::wait_until(TIMEOUT_MS, || info()[2] == 2);
    let released = code(tessera::IVC_RELEASE, mine, 0) == 0;
    let offer = u64::from(rd(BELL + reg::OFFER));
    let (c, r) = call(tessera::IVC_ATTACH, offer, 0);
    let gpa = r[0];
    t.report(
        "attach-owners-channel",
        two && released && offer != 0 && c == 0,
        format_args!("{} {} {:#x} {}", two, released, offer, c),
    );
    SEEN.store(0, Ordering::Relaxed);
    // The owner resets itself: this VM is rung, keeps its mapping with
    // what the owner wrote, and sees PEER_GONE until it releases.
    let gone = time::wait_until(4 * TIMEOUT_MS, || state(offer) == (0, ivc::PEER_GONE));
    let rung = wait_event(bit(offer)).is_some();
    let word = rd(gpa);
    let kept = word == RESET_MAGIC;
    // A ring of a channel whose other party is gone does nothing (no
    // abort either).
    let ring_ignored = guarded(|| ring(offer)).1.is_none();
    let released = code(tessera::IVC_RELEASE, offer, 0) == 0;
    let dead = state(offer).0 == ivc::BAD_ID;
    t.report(
        "peer-sees-owner-reset",
        gone && rung && kept && ring_ignored && released && dead,
        format_args!(
            "gone {} rung {} kept {:#x} ring ignored {} released {} dead {}",
            gone, rung, word, ring_ignored, released, dead
        ),
    );
    SEEN.store(0, Ordering::Relaxed);
    let round = peer_round(ROUNDS, 0x3000, true);
    t.report(
        "realloc-after-reset",
        round.is_ok(),
        format_args!("{:?}", round),
    );
    let end = info();
    t.report(
        "pool-back-to-start",
        end == [POOL_SIZE, POOL_SIZE, POOL_SLOTS, 0],
        format_args!("{:x?}", end),
    );
}
