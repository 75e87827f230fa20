/*
 * bpf_obj.S — the compiled BPF reader (bpf/tcpstate.bpf.c, built by
 * netstate/module.mk into $(BUILD)) embedded as bytes, for bpf.c.
 * NS_BPF_OBJ is its path, given by the build.
 */
	.section .rodata
	.balign 8
	.globl ns_bpf_obj_start
	.globl ns_bpf_obj_end
ns_bpf_obj_start:
	.incbin NS_BPF_OBJ
ns_bpf_obj_end:
	.section .note.GNU-stack,"",@progbits
