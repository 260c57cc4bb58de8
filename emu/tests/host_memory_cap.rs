//! A guest that touches more pages than the host-side cap allows stops with an
//! emulator error naming the cap, instead of the host allocating without bound.
//! The cap is lowered for the test so it needs a few pages, not gigabytes.

use emu::events::{NullSink, StopReason};
use emu::exec::identity_machine;
use emu::{EmuError, StepResult};
use mmu::PhysAddr;

#[test]
fn writing_page_after_page_stops_at_the_cap() {
    let mut m = identity_machine().unwrap_or_else(|e| panic!("{e}"));
    // The page tables and the code already occupy some pages; allow 16 more.
    let base = 0x100000u64;
    // mov %rax, (%rbx); add $0x1000, %rbx; jmp back to the store.
    let code = [
        0x48, 0x89, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00, 0xeb, 0xf4,
    ];
    m.mem
        .write(PhysAddr(base), &code)
        .unwrap_or_else(|e| panic!("{e}"));
    let held = m.mem.touched_pages() as u64;
    m.mem.set_resident_cap((held + 16) * 4096);
    let st = &mut m.cores[0].cpu.state;
    st.rip = base;
    st.gpr[3] = 0x200000; // rbx: the first page to write
    let mut sink = NullSink;
    let mut stop = None;
    for _ in 0..1000 {
        match m.step(0, &mut sink).unwrap_or_else(|e| panic!("{e}")) {
            StepResult::Stopped(r) => {
                stop = Some(r);
                break;
            }
            _ => continue,
        }
    }
    match stop {
        Some(StopReason::Error(e)) => {
            assert!(
                matches!(e, EmuError::HostMemoryCap { .. }),
                "stopped with another error: {e}"
            );
            assert!(e.to_string().contains("host-side cap"), "{e}");
        }
        other => panic!("expected a stop at the host memory cap, got {other:?}"),
    }
    assert_eq!(m.mem.touched_pages() as u64, held + 16);
}
