#include "textflag.h"

// func Load8(p *uint8) uint8
TEXT ·Load8(SB), NOSPLIT, $0-9
	MOVQ p+0(FP), AX
	MOVB (AX), BX
	MOVB BX, ret+8(FP)
	RET

// func Load16(p *uint16) uint16
TEXT ·Load16(SB), NOSPLIT, $0-10
	MOVQ p+0(FP), AX
	MOVW (AX), BX
	MOVW BX, ret+8(FP)
	RET

// func Load32(p *uint32) uint32
TEXT ·Load32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL (AX), BX
	MOVL BX, ret+8(FP)
	RET

// func Store8(p *uint8, v uint8)
TEXT ·Store8(SB), NOSPLIT, $0-9
	MOVQ p+0(FP), AX
	MOVB v+8(FP), BX
	MOVB BX, (AX)
	RET

// func Store16(p *uint16, v uint16)
TEXT ·Store16(SB), NOSPLIT, $0-10
	MOVQ p+0(FP), AX
	MOVW v+8(FP), BX
	MOVW BX, (AX)
	RET

// func Store32(p *uint32, v uint32)
TEXT ·Store32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET
