# Tessera: `make run ARCH=aarch64` boots the default config in QEMU,
# `make test` runs every test. Missing tools are installed by scripts/setup.sh.

ARCH ?= aarch64
CONFIG ?= configs/qemu-virt-linux.toml

ifneq ($(ARCH),aarch64)
$(error ARCH=$(ARCH) is not supported yet (aarch64 only))
endif

TARGET := aarch64-unknown-none-softfloat
# Debian's Rust builds core/alloc from source for bare-metal targets
# (rustup here has neither the targets nor rust-src).
HYP_CARGO := RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo
BUILD_STD := -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem
OBJCOPY := /usr/lib/llvm-22/bin/llvm-objcopy

CONFIG_NAME := $(basename $(notdir $(CONFIG)))
IMAGE_DIR := build/$(ARCH)/$(CONFIG_NAME)
IMAGE := $(IMAGE_DIR)/tessera.bin
ELF := target/$(TARGET)/release/tessera

# QEMU virt with EL2 and GICv3; semihosting lets the hypervisor report a
# failed run through QEMU's exit status.
# The memory size is the one the build computed for the config.
QEMU := qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a72 \
	-smp 4 -nographic -semihosting-config enable=on,target=native
# What `make run` attaches: QEMU's second PL011 (uart1) to a file, and a
# small virtio disk for the VM that is given the virtio-mmio page.
RUN_DISK := build/run-disk.img
RUN_UART1 := build/run-uart1.log
QEMU_TIMEOUT ?= 3600

# Linux guest assets (Debian 12's arm64 kernel, a busybox initramfs), fetched
# and built by scripts/fetch-linux.sh; see docs/LINUX.md.
LINUX_DIR := build/linux
LINUX_IMAGE := $(LINUX_DIR)/Image
LINUX_INITRAMFS := $(LINUX_DIR)/initramfs.cpio.gz
LINUX_ASSETS := $(LINUX_IMAGE) $(LINUX_INITRAMFS)

.PHONY: all setup guests build run test unit-test boot-test fuzz bench check fmt clean \
	linux-assets linux-baseline

all: build

setup:
	@bash scripts/setup.sh

guests: setup
	@$(MAKE) -s -C guests

# The image is always rebuilt through cargo (cheap when nothing changed):
# the config path is an input make cannot see into.
build: guests linux-assets
	@mkdir -p $(IMAGE_DIR)
	TESSERA_CONFIG=$(CONFIG) $(HYP_CARGO) build --release $(BUILD_STD) --target $(TARGET)
	@$(OBJCOPY) -O binary $(ELF) $(IMAGE)
	@cp $(ELF) $(IMAGE_DIR)/tessera.elf
	@echo "image: $(IMAGE)"

run: build
	@[ -f $(RUN_DISK) ] || { printf 'TESSERA-DISK-PATTERN\n' > $(RUN_DISK); truncate -s 4M $(RUN_DISK); }
	timeout --foreground $(QEMU_TIMEOUT) $(QEMU) -m $$(cat $(IMAGE_DIR)/qemu-memory) \
		-serial mon:stdio -serial file:$(RUN_UART1) \
		-drive file=$(RUN_DISK),if=none,format=raw,id=d0 -device virtio-blk-device,drive=d0 \
		-kernel $(IMAGE)

# Host unit tests, then the boot tests (which build images with `make build`
# and boot them in QEMU). Both are cargo tests, so results are counted.
test: guests check
	cargo test --workspace --exclude tessera-boot-tests --features tessera-config/build
	cargo test -p tessera-boot-tests --tests -- --test-threads=2

unit-test:
	cargo test --workspace --exclude tessera-boot-tests --features tessera-config/build

boot-test: guests check
	cargo test -p tessera-boot-tests --tests -- --test-threads=2

# The fuzz targets (docs/TESTING.md), long: FUZZ_CASES inputs each, one
# target with FUZZ_TARGET=<name> (e.g. esr_decode). `make test` runs them
# with a small count; each prints `fuzz <name>: <n> inputs, 0 failures`.
FUZZ_CASES ?= 1000000
FUZZ_TARGET ?=
fuzz:
	FUZZ_CASES=$(FUZZ_CASES) cargo test --profile fuzz --lib --tests -p tessera -p tessera-config \
		--features tessera-config/build fuzz_$(FUZZ_TARGET) -- --nocapture --test-threads=1

# The script is idempotent: without network work when the assets exist, and
# it rebuilds the initramfs when guests/linux/ changed.
linux-assets:
	@bash scripts/fetch-linux.sh

# The Linux guest booted in plain QEMU (no hypervisor), its checks verified.
linux-baseline: linux-assets
	@bash scripts/linux-baseline.sh

bench: setup
	@bash scripts/bench.sh

# Formatting and lints, host and bare-metal (Debian's clippy for the latter).
check: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features tessera-config/build -- -D warnings
	PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release $(BUILD_STD) --target $(TARGET) -- -D warnings
	cd guests && cargo fmt --all --check
	cd guests && PATH=/usr/bin:$$PATH $(HYP_CARGO) clippy --release -Zbuild-std=core \
		-Zbuild-std-features=compiler-builtins-mem --target $(TARGET) -- -D warnings

fmt:
	cargo fmt --all

clean:
	rm -rf build target guests/target
