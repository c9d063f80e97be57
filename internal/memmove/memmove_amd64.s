#include "textflag.h"

// copyBlocks moves 128 bytes per pass through eight general-purpose
// registers. Under QEMU 7.2's TCG (qemu64) it copied 1 MiB at 2.5 GB/s
// where the runtime's REP MOVSQ did 1.5 and a loop of SSE2 MOVOU 1.3:
// TCG turns a 64-bit load or store into one guest memory access, a
// 128-bit MOVOU into two plus traffic to the emulated register file.
//
// func copyBlocks(dst, src unsafe.Pointer, n uintptr)
TEXT ·copyBlocks(SB), NOSPLIT, $0-24
	MOVQ	dst+0(FP), DI
	MOVQ	src+8(FP), SI
	MOVQ	n+16(FP), CX
	TESTQ	CX, CX
	JZ	done
loop:
	MOVQ	0(SI), AX
	MOVQ	8(SI), BX
	MOVQ	16(SI), DX
	MOVQ	24(SI), R8
	MOVQ	32(SI), R9
	MOVQ	40(SI), R10
	MOVQ	48(SI), R11
	MOVQ	56(SI), R12
	MOVQ	AX, 0(DI)
	MOVQ	BX, 8(DI)
	MOVQ	DX, 16(DI)
	MOVQ	R8, 24(DI)
	MOVQ	R9, 32(DI)
	MOVQ	R10, 40(DI)
	MOVQ	R11, 48(DI)
	MOVQ	R12, 56(DI)
	MOVQ	64(SI), AX
	MOVQ	72(SI), BX
	MOVQ	80(SI), DX
	MOVQ	88(SI), R8
	MOVQ	96(SI), R9
	MOVQ	104(SI), R10
	MOVQ	112(SI), R11
	MOVQ	120(SI), R12
	MOVQ	AX, 64(DI)
	MOVQ	BX, 72(DI)
	MOVQ	DX, 80(DI)
	MOVQ	R8, 88(DI)
	MOVQ	R9, 96(DI)
	MOVQ	R10, 104(DI)
	MOVQ	R11, 112(DI)
	MOVQ	R12, 120(DI)
	ADDQ	$128, SI
	ADDQ	$128, DI
	SUBQ	$128, CX
	JNZ	loop
done:
	RET
