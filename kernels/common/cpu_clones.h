// SOLVERD_CPU_CLONES: marks a hot CPU loop to be compiled for AVX2+FMA as
// well as the portable baseline, the variant picked at run time, so the
// portable build still runs at full width on the machines that have it.
// SOLVERD_CLONE_BODY: a function whose body a clone runs (a template shared
// by overloads): always inlined, so each clone compiles it for its own
// CPU. Called, it would run the baseline code in every clone (GCC
// compiled such a body once, for the baseline).
// Macros only: no state, nothing to share between threads.
#ifndef SOLVERD_KERNELS_COMMON_CPU_CLONES_H_
#define SOLVERD_KERNELS_COMMON_CPU_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SOLVERD_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SOLVERD_CPU_CLONES
#endif
#define SOLVERD_CLONE_BODY inline __attribute__((always_inline))

#endif  // SOLVERD_KERNELS_COMMON_CPU_CLONES_H_
