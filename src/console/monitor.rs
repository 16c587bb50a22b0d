//! What the monitor of either console (`physical.rs` on AArch64,
//! `lines.rs` on x86) says and does about the VMs: list them with their
//! counters, stop or restart one by name.

use super::input::{Action, VmCommand, VmName};

/// Whether VM `name` can still take input (it is not off for good).
pub fn vm_alive(name: &str) -> bool {
    crate::vm::all()
        .iter()
        .find(|vm| vm.config.name == name)
        .is_some_and(|vm| vm.power.state() != crate::vm::VmState::Off)
}

/// Carries out the monitor actions both consoles share; `target` is the VM
/// that has input. Returns `false` for the console's own actions (input
/// routing, switching, closing), which it handles itself.
pub fn act(action: Action, target: Option<&str>) -> bool {
    match action {
        Action::MonitorOpened | Action::MonitorHelp => crate::println!(
            "monitor: l = list VMs, s NAME = stop, r NAME = restart, n = move input to the next VM, q = leave"
        ),
        Action::ListVms => list_vms(target),
        Action::AskName(command) => {
            crate::println!("monitor: {} which VM? (name, Enter)", command_text(command))
        }
        Action::OnVm(command, name) => on_vm(command, &name),
        Action::BadName => crate::println!("monitor: no such VM name"),
        Action::Cancelled => crate::println!("monitor: cancelled"),
        Action::Forward { .. }
        | Action::Switched { .. }
        | Action::MonitorClosed { .. }
        | Action::None => return false,
    }
    true
}

/// The monitor's `l`: two lines per VM, its state and its counters.
fn list_vms(target: Option<&str>) {
    for vm in crate::vm::all() {
        crate::println!(
            "  vm {}: {}, {} vCPU(s), resets={}{}",
            vm.config.name,
            vm.power.state().name(),
            vm.vcpus.len(),
            vm.resets(),
            if target == Some(vm.config.name) {
                ", has input"
            } else {
                ""
            }
        );
        crate::println!("    {} counters:{}", vm.config.name, vm.counters());
    }
}

fn command_text(command: VmCommand) -> &'static str {
    match command {
        VmCommand::Stop => "stop",
        VmCommand::Restart => "restart",
    }
}

/// The monitor's `s NAME` and `r NAME`: says what it does, then asks the
/// VM's lifecycle to do it (the VM's own cores carry it out).
fn on_vm(command: VmCommand, name: &VmName) {
    let what = command_text(command);
    let Some(vm) = crate::vm::all()
        .iter()
        .find(|vm| vm.config.name == name.as_str())
    else {
        crate::println!("monitor: {} {}: no such VM", what, name.as_str());
        return;
    };
    // Said first: the VM's own lines (stopped, reset #N) follow it.
    crate::println!("monitor: {} {}", what, vm.config.name);
    let done = match command {
        VmCommand::Stop => vm.operator_stop(),
        VmCommand::Restart => vm.operator_restart(),
    };
    if let Err(state) = done {
        crate::println!(
            "monitor: {} {} refused: the VM is {}",
            what,
            vm.config.name,
            state.name()
        );
    }
}
